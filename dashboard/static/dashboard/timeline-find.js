// The turn a search result links to (/sessions/<id>/?turn=<seq>#turn-<seq>; the timeline says
// which in data-found-turn). The server renders the timeline down to it — up to
// DETAIL_FIND_MAX_TURNS turns; older than that, this script loads the older pages itself (what
// "Load older turns" loads) until the turn is on the page. Then it is scrolled into view, once,
// and marked (turn--found) — and marked again whenever the timeline is swapped (live.js keeps the
// turns the page shows when it refreshes, see its depth()).
(function () {
  "use strict";
  var MAX_PAGES = 400;  // 20,000 turns at 50 a page: a bound, not a goal
  var seq = 0, scrolled = false, busy = false, pages = 0;

  function mark() {
    var turn = document.getElementById("turn-" + seq);
    if (!turn) return false;
    turn.classList.add("turn--found");
    if (!scrolled) {
      scrolled = true;
      turn.scrollIntoView({ block: "center" });
    }
    return true;
  }

  function ensure() {
    if (busy || mark()) return;
    var older = document.querySelector("#load-older [hx-get]");
    if (!older || pages >= MAX_PAGES || typeof htmx === "undefined") return;
    busy = true;
    pages += 1;
    htmx.ajax("GET", older.getAttribute("hx-get"), { target: "#load-older", swap: "outerHTML" }).then(
      function () { busy = false; ensure(); },
      function () { busy = false; });
  }

  function start() {
    var timeline = document.getElementById("timeline");
    seq = timeline ? parseInt(timeline.getAttribute("data-found-turn") || "0", 10) : 0;
    if (!(seq > 0)) return;
    document.body.addEventListener("htmx:afterSettle", ensure);
    ensure();
  }

  // htmx is loaded with defer, before this script: it exists at DOMContentLoaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
