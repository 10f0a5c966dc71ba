/* Jobyard's pages: confirm steps, the start dialogs, list filters and the run page's live tail.
 * The CSP forbids inline scripts and handlers, so everything is attached here from data- attributes. */
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* Times are shown in UTC, as the server renders them: 2025-03-01 14:05:09. */
  function when(iso) {
    if (!iso) return "—";
    var moment = new Date(iso);
    return isNaN(moment.getTime()) ? "—" : moment.toISOString().replace("T", " ").slice(0, 19);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var whole = Math.floor(seconds);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (whole < 3600) return Math.floor(whole / 60) + " min " + pad(whole % 60) + " s";
    if (whole < 86400) return Math.floor(whole / 3600) + " h " + pad(Math.floor((whole % 3600) / 60)) + " min";
    return Math.floor(whole / 86400) + " d " + pad(Math.floor((whole % 86400) / 3600)) + " h";
  }

  /* Forms and buttons carrying data-confirm ask first; data-require-selection wants a ticked box. */
  function attachConfirms() {
    document.querySelectorAll("form").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var submitter = event.submitter;
        var needed = form.dataset.requireSelection;
        if (needed && !form.querySelector('input[name="' + needed + '"]:checked')) {
          event.preventDefault();
          window.alert("Select at least one run first.");
          return;
        }
        var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
        if (question && !window.confirm(question)) event.preventDefault();
      });
    });
  }

  /* The runs list: select all, and how many are selected. */
  function attachSelection() {
    var all = document.getElementById("select-all");
    var counter = document.getElementById("selection-count");
    var boxes = function () { return document.querySelectorAll('input[name="run_ids"]'); };
    var count = function () {
      if (counter) counter.textContent = document.querySelectorAll('input[name="run_ids"]:checked').length + " selected";
    };
    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (box) { box.checked = all.checked; });
        count();
      });
    }
    boxes().forEach(function (box) { box.addEventListener("change", count); });
    count();
  }

  /* Start dialogs: the parameters, then "Start <title>? Yes / No". */
  function showStep(dialog, step) {
    dialog.querySelectorAll(".step").forEach(function (part) {
      part.hidden = !part.classList.contains("step-" + step);
    });
    var focus = step === "confirm" ? dialog.querySelector('button[name="yes"]') : dialog.querySelector(".step-params input, .step-params select, .step-params textarea");
    if (focus) focus.focus();
  }

  function attachDialogs() {
    document.querySelectorAll("[data-open-dialog]").forEach(function (button) {
      button.addEventListener("click", function () {
        var dialog = document.getElementById(button.dataset.openDialog);
        if (!dialog) return;
        showStep(dialog, dialog.querySelector(".step-params") ? "params" : "confirm");
        dialog.showModal();
      });
    });
    document.querySelectorAll("[data-close-dialog]").forEach(function (button) {
      button.addEventListener("click", function () { button.closest("dialog").close(); });
    });
    document.querySelectorAll("dialog [data-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        var dialog = button.closest("dialog");
        if (button.dataset.step === "confirm") {
          var fields = dialog.querySelectorAll(".step-params input, .step-params select, .step-params textarea");
          for (var i = 0; i < fields.length; i++) {
            if (!fields[i].checkValidity()) { fields[i].reportValidity(); return; }
          }
        }
        showStep(dialog, button.dataset.step);
      });
    });
    document.querySelectorAll("dialog[data-autoopen]").forEach(function (dialog) {
      showStep(dialog, dialog.querySelector(".step-params") ? "params" : "confirm");
      dialog.showModal();
    });
  }

  /* The job types list: text filter and seed 001's status toggles. */
  function attachTypeFilter() {
    var table = document.getElementById("job-types");
    var text = document.getElementById("type-filter");
    if (!table || !text) return;
    var toggles = document.querySelectorAll("[data-status-filter]");
    var none = document.getElementById("no-type-matches");
    function apply() {
      var needle = text.value.trim().toLowerCase();
      var wanted = {};
      toggles.forEach(function (box) { wanted[box.dataset.statusFilter] = box.checked; });
      var shown = 0;
      table.querySelectorAll("tbody tr[data-type]").forEach(function (row) {
        var visible = (!needle || row.dataset.search.indexOf(needle) >= 0) && wanted[row.dataset.lastGroup] !== false;
        row.hidden = !visible;
        if (visible) shown++;
      });
      if (none) none.hidden = shown > 0;
    }
    text.addEventListener("input", apply);
    toggles.forEach(function (box) { box.addEventListener("change", apply); });
  }

  /* Schedule form: the help line of the chosen trigger kind; type names offered for "after". */
  function attachKindHelp() {
    var select = document.querySelector("[data-kind-select]");
    if (!select) return;
    var value = document.getElementById("trigger_value");
    function apply() {
      document.querySelectorAll("[data-kind-help]").forEach(function (line) {
        line.hidden = line.dataset.kindHelp !== select.value;
      });
      if (select.value === "after") value.setAttribute("list", "type-names");
      else value.removeAttribute("list");
    }
    select.addEventListener("change", apply);
    apply();
  }

  /* New identity: the credential box only for the types that bring their own, and the chosen type's help.
   * Hidden, it is also disabled, so that text typed for another type is not sent. */
  function attachIdentityType() {
    var select = document.querySelector("[data-identity-type]");
    if (!select) return;
    var box = document.querySelector("[data-for-types]");
    function apply() {
      document.querySelectorAll("[data-type-help]").forEach(function (line) {
        line.hidden = line.dataset.typeHelp !== select.value;
      });
      if (!box) return;
      var shown = box.dataset.forTypes.split(" ").indexOf(select.value) >= 0;
      box.hidden = !shown;
      box.disabled = !shown;
    }
    select.addEventListener("change", apply);
    apply();
  }

  function attachCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.dataset.copy);
        field.select();
        if (navigator.clipboard) navigator.clipboard.writeText(field.value);
        button.textContent = "Copied";
      });
    });
  }

  /* The run page's live tail: polls the run's JSON until the run is final, then reloads once so that
   * the result, items and buttons of the final state show. */
  function badge(status, label) {
    var span = document.createElement("span");
    span.className = "badge status-" + status;
    span.dataset.status = status;
    span.textContent = label;
    return span;
  }

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function renderAttempts(history) {
    var body = document.getElementById("attempts-body");
    if (!body) return;
    history.forEach(function (a) {
      var key = a.series + "." + a.number;
      var row = body.querySelector('tr[data-attempt="' + key + '"]');
      if (!row) {
        row = document.createElement("tr");
        row.dataset.attempt = key;
        row.append(cell(key), cell(a.worker || "", "mono small"), cell(""), cell(""), cell(""), cell(""));
        body.appendChild(row);
      }
      var cells = row.children;
      cells[2].textContent = when(a.started_at);
      cells[3].textContent = when(a.finished_at);
      cells[4].textContent = a.outcome || "running";
      cells[4].className = a.outcome ? "outcome outcome-" + a.outcome : "muted";
      if (!cells[5].querySelector("details")) {
        cells[5].textContent = a.error_class ? a.error_class + ": " + (a.error_message || "") : "";
      }
    });
    if (history.length) body.querySelectorAll(".empty-row").forEach(function (row) { row.remove(); });
  }

  function renderLogs(lines) {
    var list = document.getElementById("log-lines");
    if (!list || !lines.length) return;
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    lines.forEach(function (line) {
      var item = document.createElement("li");
      item.dataset.logId = line.id;
      item.className = "log-" + line.level + " fresh";
      var time = document.createElement("time");
      time.dateTime = line.at;
      time.textContent = when(line.at);
      var level = document.createElement("span");
      level.className = "level";
      level.textContent = line.level;
      var message = document.createElement("span");
      message.className = "message";
      message.textContent = line.message;
      item.append(time, " ", level, " ", message);
      list.appendChild(item);
    });
    list.hidden = false;
    var empty = document.getElementById("log-empty");
    if (empty) empty.hidden = true;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function renderProgress(data) {
    var bar = document.getElementById("live-progress");
    var text = document.getElementById("live-progress-text");
    var p = data.progress || {};
    if (bar) {
      if (p.total) {
        bar.max = p.total;
        bar.value = p.done || 0;
        bar.hidden = false;
        if (text) text.textContent = (p.done || 0) + "/" + p.total;
      } else if (data.status === "running") {
        bar.removeAttribute("value");
        bar.hidden = false;
      }
    }
    var message = document.getElementById("live-progress-message");
    if (message) message.textContent = p.message || "";
  }

  function setText(id, value) {
    var element = document.getElementById(id);
    if (element) element.textContent = value;
  }

  function render(root, data) {
    root.dataset.status = data.status;
    var holder = document.getElementById("live-status");
    if (holder) holder.replaceChildren(badge(data.status, data.status_label));
    setText("live-started", when(data.started_at));
    setText("live-finished", when(data.finished_at));
    setText("live-running-time", duration(data.running_time_s));
    setText("live-next-attempt", data.status === "retrying" ? when(data.next_attempt_at) : "—");
    setText("live-attempts", data.attempts + "/" + data.max_attempts);
    renderProgress(data);
    renderAttempts(data.attempt_history || []);
    renderLogs(data.logs || []);
  }

  function attachLiveTail() {
    var root = document.getElementById("run");
    if (!root || root.dataset.final === "true") return;
    var after = parseInt(root.dataset.after, 10) || 0;
    var every = parseInt(root.dataset.refreshMs, 10) || 1000;
    var indicator = document.getElementById("live-indicator");
    var failures = 0;
    function stop() { if (indicator) indicator.hidden = true; }
    function poll() {
      fetch(root.dataset.liveUrl + "?after=" + after, {
        // A background poll: it must not keep an unattended session from going idle.
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken(), "X-Jobyard-Poll": "1" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (!response.ok || (response.headers.get("Content-Type") || "").indexOf("application/json") < 0) {
            throw new Error("the run page stopped answering (" + response.status + ")");
          }
          return response.json();
        })
        .then(function (data) {
          failures = 0;
          render(root, data);
          after = Math.max(after, data.last_log_id || 0);
          if (data.final) {
            stop();
            window.location.reload();
          } else {
            window.setTimeout(poll, every);
          }
        })
        .catch(function () {
          // A restarting web process is a blip; a page that keeps failing (logged out, gone) stops polling.
          failures++;
          if (failures < 5) window.setTimeout(poll, every * 2 * failures);
          else stop();
        });
    }
    window.setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    attachConfirms();
    attachSelection();
    attachDialogs();
    attachTypeFilter();
    attachKindHelp();
    attachIdentityType();
    attachCopy();
    attachLiveTail();
  });
})();
