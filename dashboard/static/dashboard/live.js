// Live updates of a session's detail page: an EventSource on the SSE server (sessions_app/live),
// and htmx refreshes of the page's parts when the change feed reports something — no reload.
// Configured by the #live-updates element (data-events-url, data-turns-url, data-summary-url).
//
// turn, delivery      → the timeline (the turns partial; again after 1/2/4 s if it does not show
//                       the event's seq yet: the page reads through DAX, which can lag a write)
// closed, handed_off,
// taken_over,
// handed_back, resync → the timeline, the session panel, the hand-off panel and the staff panel
//                       (one GET of this page, parts picked by hx-select / selectOOB)
// summarised          → the summary panel (its partial)
// deleted, expired    → a note; nothing left to refresh
// The stream's rules (reconnects, catching up once it opens, when it counts as away) are
// live-stream.js's; while it is away this page polls every 5 s.
//
// A panel holding the focus or text being typed (the hand-off reply form) is not replaced.
// A refresh keeps the turns the page shows, in its order: it asks for the newest turns down to the
// oldest one shown (?down_to=, see depth()), so older pages loaded — or the turn a search result
// opened — stay. A window that does not reach the newest turn ("Go to turn", "First turn": it
// ends in "Load newer turns") is refreshed as that window (&up_to=): a new turn does not pull the
// page away from the turns being read; "Load newer turns" brings it.
(function () {
  "use strict";
  var POLL_MS = 5000;

  var root, eventsUrl, turnsUrl, summaryUrl, pageUrl;
  var stream = null, pollTimer = null, pollTick = 0;
  var pending = { turns: false, status: false, summary: false }, flushTimer = null;
  var wantSeq = 0, staleRetries = 0, gone = false;

  function say(text) {
    root.textContent = text;
    root.hidden = !text;
  }

  // The seqs shown, lowest and highest (the order may be either).
  function shown() {
    var turns = document.querySelectorAll("#timeline li.turn"), low = 0, high = 0;
    for (var i = 0; i < turns.length; i++) {
      var seq = parseInt(turns[i].id.replace("turn-", ""), 10) || 0;
      if (seq > 0 && (!low || seq < low)) low = seq;
      if (seq > high) high = seq;
    }
    return { low: low, high: high };
  }

  function topSeq() {
    return shown().high;
  }

  // A window short of the newest turn (it ends in "Load newer turns").
  function windowed() {
    return !!document.getElementById("load-newer");
  }

  function oldestFirst() {
    var timeline = document.getElementById("timeline");
    return !!timeline && timeline.getAttribute("data-order") === "oldest";
  }

  // "?down_to=<the oldest seq shown>[&up_to=<the newest, in a window>][&order=oldest]" for the
  // refreshes; without a turn shown only the order.
  function depth() {
    var s = shown(), params = [];
    if (s.low > 0) params.push("down_to=" + s.low);
    if (s.high > 0 && windowed()) params.push("up_to=" + s.high);
    if (oldestFirst()) params.push("order=oldest");
    return params.length ? "?" + params.join("&") : "";
  }

  function editing(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
    var fields = region.querySelectorAll("textarea, input[type=text]");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  // --- refreshing the page's parts ----------------------------------------------------------
  function refreshTurns() {
    if (!document.getElementById("timeline")) return Promise.resolve();
    return htmx.ajax("GET", turnsUrl + depth(), { target: "#timeline", swap: "innerHTML" }).then(function () {
      if (!windowed() && wantSeq > topSeq() && staleRetries < 3) {
        setTimeout(function () { want({ turns: true }); }, 1000 * Math.pow(2, staleRetries++));
      } else {
        staleRetries = 0;
      }
    });
  }

  function refreshStatus() {
    var extra = ["#timeline", "#handoff-panel", "#staff-viewing"].filter(function (id) {
      var region = document.querySelector(id);
      return region && !editing(region);
    });
    if (!document.getElementById("meta-panel")) return Promise.resolve();
    return htmx.ajax("GET", pageUrl + depth(), {
      target: "#meta-panel", select: "#meta-panel", swap: "outerHTML", selectOOB: extra.join(",")
    });
  }

  function refreshSummary() {
    var panel = document.getElementById("summary-panel");
    if (!panel || !summaryUrl || editing(panel)) return Promise.resolve();
    return htmx.ajax("GET", summaryUrl, { target: "#summary-panel", swap: "innerHTML" });
  }

  // Events come in bursts (a turn and its answer): one refresh per 250 ms is enough.
  function want(parts) {
    if (gone) return;
    Object.keys(parts).forEach(function (k) { if (parts[k]) pending[k] = true; });
    if (!flushTimer) flushTimer = setTimeout(flush, 250);
  }

  function flush() {
    flushTimer = null;
    var p = pending;
    pending = { turns: false, status: false, summary: false };
    if (p.status) refreshStatus();            // brings the timeline along
    else if (p.turns) refreshTurns();
    if (p.summary) refreshSummary();
  }

  // --- the stream (live-stream.js) -------------------------------------------------------------
  function ended(kind) {
    return function () {
      gone = true;
      if (stream) stream.stop();
      stopPolling();
      var viewing = document.getElementById("staff-viewing");  // its ping would only meet a 404 now
      if (viewing) viewing.remove();
      say(kind === "deleted" ? "This session has been deleted." : "This session has expired (retention).");
    };
  }

  function handlers() {
    var on = {
      turn: function (data) {
        if (data.seq > wantSeq) wantSeq = data.seq;
        want({ turns: true });
      },
      delivery: function () { want({ turns: true }); },
      summarised: function () { want({ summary: true }); },
      deleted: ended("deleted"),
      expired: ended("expired")
    };
    ["closed", "handed_off", "taken_over", "handed_back", "resync"].forEach(function (kind) {
      on[kind] = function () { want({ turns: true, status: true }); };
    });
    return on;
  }

  // --- polling, while the stream is away ----------------------------------------------------------
  function startPolling() {
    if (pollTimer || gone) return;
    pollTimer = setInterval(function () {
      if (document.hidden) return;
      pollTick += 1;
      want(pollTick % 3 === 0 ? { status: true } : { turns: true });  // the status every 15 s
    }, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  function start() {
    root = document.getElementById("live-updates");
    if (!root || typeof htmx === "undefined" || !window.MangaLive) return;
    eventsUrl = root.dataset.eventsUrl;
    turnsUrl = root.dataset.turnsUrl;
    summaryUrl = root.dataset.summaryUrl;
    // Not window.location: the page may be the answer of a POST (a refused close, hand-off).
    pageUrl = root.dataset.pageUrl || window.location.pathname;
    wantSeq = topSeq();
    stream = window.MangaLive.follow(eventsUrl, {
      on: handlers(),
      onOpen: function (catchUp) {
        if (catchUp) want({ turns: true, status: true });
        stopPolling();
      },
      onAway: startPolling
    });
  }

  // htmx is loaded with defer, like this script and before it: it exists at DOMContentLoaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
