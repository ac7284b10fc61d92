// The session page's own controls (no inline script: the page's CSP refuses it).
//
// - Confirmation dialogs: a link or button with data-opens-dialog="<dialog id>" opens that
//   <dialog> as a modal instead of following its link (the link, ?confirm=close, is the confirm
//   page without JavaScript). A dialog the server rendered open (a POST that lacked the
//   confirmation: 400) is shown as a modal too. Cancel is the dialog's own formmethod="dialog"
//   button, or Escape.
// - "Go to turn" lands on the turn's anchor (#turn-<seq>).
// - Turn anchors: every turn's number links to #turn-<seq>. A page opened (or a link followed)
//   at #turn-<seq> whose turn is not among the turns shown asks the server for a window around
//   it (?at=<seq>#turn-<seq>, in the page's order) — once: a turn that does not exist only leaves
//   the hash unanswered; a search result's turn (?turn=, data-found-turn) is timeline-find.js's.
(function () {
  "use strict";

  function openModal(dialog) {
    if (!dialog || typeof dialog.showModal !== "function") return false;
    if (dialog.open) dialog.close();
    dialog.showModal();
    var cancel = dialog.querySelector("[formmethod=dialog]");
    if (cancel) cancel.focus();  // the safe choice has the focus
    return true;
  }

  function startDialogs() {
    document.addEventListener("click", function (event) {
      var opener = event.target.closest ? event.target.closest("[data-opens-dialog]") : null;
      if (!opener) return;
      if (openModal(document.getElementById(opener.getAttribute("data-opens-dialog")))) event.preventDefault();
    });
    document.querySelectorAll("dialog[open]").forEach(function (dialog) {
      openModal(dialog);
      dialog.addEventListener("close", function () {
        // Leave the confirm page's URL (?confirm=close): a reload must not open it again.
        if (window.location.search.indexOf("confirm=") >= 0 && window.history.replaceState) {
          var params = new URLSearchParams(window.location.search);
          params.delete("confirm");
          var query = params.toString();
          window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
        }
      }, { once: true });
    });
  }

  function pageUrl() {
    var live = document.getElementById("live-updates");
    return (live && live.getAttribute("data-page-url")) || window.location.pathname;
  }

  function reach() {
    var m = /^#turn-(\d+)$/.exec(window.location.hash);
    var timeline = document.getElementById("timeline");
    if (!m || !timeline || document.getElementById("turn-" + m[1])) return;
    var seq = parseInt(m[1], 10);
    var count = parseInt(timeline.getAttribute("data-turn-count") || "0", 10);
    var params = new URLSearchParams(window.location.search);
    if (!(seq > 0) || seq > count || params.get("at") === String(seq)) return;  // asked once already
    // A search result's turn (?turn=): timeline-find.js loads the older pages down to it.
    if (timeline.getAttribute("data-found-turn") === String(seq)) return;
    var query = new URLSearchParams();
    query.set("at", String(seq));
    if (timeline.getAttribute("data-order") === "oldest") query.set("order", "oldest");
    window.location.assign(pageUrl() + "?" + query.toString() + "#turn-" + seq);
  }

  // "Go to turn": land on the turn's anchor, not on the timeline's top (the form's action for a
  // browser without JavaScript): the browser's own scroll to the fragment then agrees with
  // timeline-find.js's.
  function startGoTo() {
    var form = document.getElementById("goto-form"), field = document.getElementById("goto-turn");
    if (!form || !field) return;
    form.addEventListener("submit", function () {
      var seq = parseInt(field.value, 10);
      if (seq > 0) form.setAttribute("action", form.getAttribute("action").split("#")[0] + "#turn-" + seq);
    });
  }

  function start() {
    startDialogs();
    startGoTo();
    reach();
    window.addEventListener("hashchange", reach);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
