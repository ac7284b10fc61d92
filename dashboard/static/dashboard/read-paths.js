// "Show read paths": the console's internal read details (where each panel was read from, how
// many items a list read and how long it took: elements with class "read-path") are hidden
// unless the top bar's toggle is on. The choice is remembered per browser (localStorage).
// A script file, no inline code: the CSP allows scripts from 'self' only.
(function () {
  "use strict";
  var KEY = "mangaassist.showReadPaths";
  var CLASS = "show-read-paths";

  function stored() {
    try { return window.localStorage.getItem(KEY) === "1"; } catch (e) { return false; }
  }

  function apply(on) {
    document.body.classList.toggle(CLASS, on);
    var button = document.getElementById("read-paths-toggle");
    if (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Hide read paths" : "Show read paths";
    }
  }

  function init() {
    apply(stored());
    var button = document.getElementById("read-paths-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var on = !document.body.classList.contains(CLASS);
      try { window.localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* storage off: this page only */ }
      apply(on);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
