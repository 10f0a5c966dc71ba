"""Every tunable default in one place; units are in the names."""

# Job types
DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT_S = 120
# First retry waits this long, then it doubles (seed 003: "wait time doubles after each attempt").
DEFAULT_BACKOFF_BASE_S = 15.0
DEFAULT_BACKOFF_MAX_S = 3600.0

# RQ bookkeeping kept in Redis; SQL keeps the history for good.
RQ_RESULT_TTL_S = 500
RQ_FAILURE_TTL_S = 7 * 24 * 3600

# Workers
WORKER_HEARTBEAT_INTERVAL_S = 5.0
# A worker silent for this long is dead; its running attempt counts as failed ("worker died").
WORKER_DEAD_AFTER_S = 60.0
WORKER_SHUTDOWN_GRACE_S = 30.0
WORKER_RESTART_BACKOFF_MAX_S = 30.0
DEFAULT_WORKER_PROCESSES = 2
# A running job asked to stop gets this long to notice; then its worker process is killed.
CANCEL_GRACE_S = 10.0
# A job still running this long past its timeout is stuck where RQ's SIGALRM cannot reach it (C code,
# a swallowed JobTimeoutException): its supervisor kills the process.
HARD_TIMEOUT_MARGIN_S = 30.0

# Reconciler
RECONCILE_INTERVAL_S = 10.0
# A run younger than this may sit between its SQL commit and its Redis push; leave it alone.
RECONCILE_GRACE_S = 5.0
RECONCILE_LOCK_TTL_S = 60
# A run queued this long is looked up in its queue list, in case a worker died between popping and starting it.
RECONCILE_VERIFY_QUEUED_AFTER_S = 60.0

# Storage
DATA_DIR = "var"
SQLITE_FILENAME = "jobyard.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
EMBEDDED_REDIS_SOCKET = "redis.sock"
EMBEDDED_REDIS_START_TIMEOUT_S = 10.0
# Jobs read server files (import CSVs, archives, certificates) only from import directories; without
# JOBYARD_IMPORT_DIRS, this one under DATA_DIR (jobs/paths.py).
IMPORT_DIRNAME = "imports"
# Jobs create server files (archives) only inside export directories; without JOBYARD_EXPORT_DIRS, this one under
# DATA_DIR. Not an import directory unless listed in JOBYARD_IMPORT_DIRS too (jobs/paths.py).
EXPORT_DIRNAME = "exports"
# A file path parameter longer than this is refused at enqueue, before anything resolves it.
SERVER_PATH_MAX_CHARS = 4096

# Bulk enqueue writes rows in batches of this many.
ENQUEUE_BATCH_SIZE = 1000

# Scheduling
# Entries are scored in whole seconds; polling five times a second keeps the firing delay under 0.2 s.
SCHEDULER_POLL_INTERVAL_S = 0.2  # rq-scheduler's lock lives int(this) + 10 s
# A due time fired later than this is a misfire (the scheduler was down): it fires once for all the due
# times it missed. Within it, every due time still fires, late.
SCHEDULE_MISFIRE_GRACE_S = 10.0
# Due schedules fired per transaction, so that 10,000 schedules due at once start without waiting for all.
SCHEDULE_FIRE_BATCH = 500
# Workers re-read which job types have "after X completes" schedules this often.
DEPENDENTS_REFRESH_S = 2.0

# Mail
MAIL_FROM = "jobyard@localhost"
MAIL_TIMEOUT_S = 10.0
MAIL_SEND_TRIES = 3  # within one pass, with tenacity
MAIL_SEND_BACKOFF_S = 0.5
MAIL_MAX_ATTEMPTS = 3  # passes before a message is kept as undelivered
MAIL_RETRY_AFTER_S = 30.0  # doubles after each failed pass
BASE_URL = "http://localhost:8000"

# Web
# A dashboard session unused this long is over; the user logs in again.
SESSION_IDLE_TIMEOUT_S = 30 * 60
# However active, a session ends this long after login.
SESSION_MAX_AGE_S = 12 * 3600
# A session's last-seen time is written at most this often, not on every request.
SESSION_TOUCH_INTERVAL_S = 60
RUNS_PAGE_SIZE = 50
RUNS_PAGE_SIZE_MAX = 500
# Live pages (run detail, runs list) poll the JSON API this often.
LIVE_REFRESH_MS = 1000
API_TOKEN_BYTES = 32
# After this many failed logins within the window, an account refuses logins until the window passes.
LOGIN_MAX_FAILURES = 10
LOGIN_FAILURE_WINDOW_S = 15 * 60
WEB_WORKERS = 2  # gunicorn processes
WEB_THREADS = 4  # threads per gunicorn process
WEB_PORT = 8000
# Requests with a larger body are refused (413) before anything reads them.
WEB_MAX_REQUEST_BYTES = 2 * 1024 * 1024

# Metrics
# Longer than one 5 s scrape interval, so that at most every other scrape of a busy database pays for the
# aggregates; figures are at most this old.
METRICS_CACHE_TTL_S = 10.0
# An attempt finished and started this long ago can no longer change (dashboard/metrics.py AttemptFigures):
# more than a commit can take and than worker clocks drift apart.
METRICS_SETTLED_AFTER_S = 15 * 60.0
# Up to this many new attempts, each one's run is looked up by key instead of hash-joining all runs.
METRICS_LOOKUP_MAX_ATTEMPTS = 20_000

# Record integrity (core/integrity.py, scheduler/sealing.py)
# The sealing pass signs settled runs and attempts this many per transaction…
SEAL_BATCH = 1000
# …for at most about this long per housekeeping pass, so that the thread's other duties keep their pace.
SEAL_BUDGET_S = 2.0
# Verify / Recompute HMAC read rows in batches of this many.
INTEGRITY_BATCH = 2000
# A Verify HMAC report (result, mail, log lines) lists at most this many mismatched rows; counts are exact.
INTEGRITY_REPORT_MAX_ROWS = 200

# Vault (core/vault.py): Change Vault Key re-encrypts this many rows per transaction.
VAULT_REKEY_BATCH = 500

# Identity provisioning (jobs/catalog/identity/)
# One HTTP call to a SCIM target may take this long before it counts as failed.
SCIM_TIMEOUT_S = 30.0
# Transient failures (connection refused, reset, timeout) of one SCIM call are retried this many times in all,
# waiting this long and doubling, before the attempt fails and the run's own backoff takes over.
SCIM_CALL_TRIES = 3
SCIM_CALL_BACKOFF_S = 0.5
# A target's service description (schemas, resource types) is asked again after this long, per worker process.
SCIM_DISCOVERY_TTL_S = 300.0
# Directory sync pages through a SCIM source this many resources at a time.
SCIM_PAGE_SIZE = 200
# Generated passwords and rotated credentials: this many random bytes, URL-safe base64 encoded.
GENERATED_SECRET_BYTES = 24
# A password set by provisioning or rotation expires this many days later (Password expiry warning reads it).
PASSWORD_MAX_AGE_DAYS = 90
# Retry failed provisioning (seed 002): a failed provisioning run is started again after these gaps, one per
# new series, so it gets 1 + len(gaps) series in all (6).
PROVISIONING_RETRY_GAPS_S = (2 * 60, 5 * 60, 20 * 60, 2 * 3600, 12 * 3600)
# Retry failed provisioning looks for failed runs whose gap has passed this often (its default schedule).
PROVISIONING_RETRY_INTERVAL_S = 60
# Password expiry warning: the threshold of its default daily schedule; operators add schedules for others.
PASSWORD_EXPIRY_WARNING_DAYS = 14
# Bulk import refuses a CSV larger than this, and more rows than this.
BULK_IMPORT_MAX_BYTES = 2 * 1024 * 1024
BULK_IMPORT_MAX_ROWS = 20_000
# A Bulk import upload (it may hold credentials, encrypted) is kept at most this long: one that a dry or failed run
# left behind is pruned by a later upload, and no run reads it once expired.
IDENTITY_UPLOAD_RETENTION_S = 7 * 24 * 3600
# Directory sync: a sync that would make leavers of more than this share of the source's known active users, and
# more than this many, fails unless its max_leavers allows them (an empty or truncated source must not disable
# everyone).
DIRECTORY_SYNC_LEAVERS_SHARE = 0.25
DIRECTORY_SYNC_LEAVERS_FLOOR = 5
# Directory sync refuses a CSV source larger than this.
DIRECTORY_CSV_MAX_BYTES = 64 * 1024 * 1024
# A Directory sync or Bulk import result lists at most this many events, run ids or rejected rows; counts are exact.
IDENTITY_REPORT_MAX_ITEMS = 100
