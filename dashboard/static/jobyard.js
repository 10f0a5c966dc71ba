/* Live updates and confirm dialogs; no inline scripts (the CSP forbids them). */
