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
// unavailable, or the stream failing 3 times in a row → poll every 5 s instead, and try the
// stream again after 30 s (doubling to 5 min while it keeps failing).
//
// A panel holding the focus or text being typed (the hand-off reply form) is not replaced.
(function () {
  "use strict";
  var POLL_MS = 5000, RETRY_FIRST_MS = 30000, RETRY_MAX_MS = 300000, ERRORS_BEFORE_FALLBACK = 3;

  var root, eventsUrl, turnsUrl, summaryUrl;
  var source = null, lastEventId = "", errors = 0, retryMs = RETRY_FIRST_MS, retryTimer = null;
  var pollTimer = null, pollTick = 0;
  var pending = { turns: false, status: false, summary: false }, flushTimer = null;
  var wantSeq = 0, staleRetries = 0, gone = false, opened = false;

  function say(text) {
    root.textContent = text;
    root.hidden = !text;
  }

  function topSeq() {
    var first = document.querySelector("#timeline li.turn");
    return first ? parseInt(first.id.replace("turn-", ""), 10) || 0 : 0;
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
    return htmx.ajax("GET", turnsUrl, { target: "#timeline", swap: "innerHTML" }).then(function () {
      if (wantSeq > topSeq() && staleRetries < 3) {
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
    return htmx.ajax("GET", window.location.pathname, {
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

  // --- the stream -----------------------------------------------------------------------------
  function url() {
    // A new EventSource does not send Last-Event-ID: say it in the query instead.
    if (!lastEventId) return eventsUrl;
    return eventsUrl + (eventsUrl.indexOf("?") < 0 ? "?" : "&") + "last_event_id=" + encodeURIComponent(lastEventId);
  }

  function note(event) {
    if (event.lastEventId) lastEventId = event.lastEventId;
    errors = 0;
    try { return JSON.parse(event.data); } catch (e) { return {}; }
  }

  function connect() {
    retryTimer = null;
    if (gone || typeof EventSource === "undefined") return fallBack();
    source = new EventSource(url(), { withCredentials: true });
    source.addEventListener("open", function () {
      errors = 0;
      retryMs = RETRY_FIRST_MS;
      // The first subscription carries no Last-Event-ID: a change between this page's render and
      // now would be missed, so read the page's parts once. Back from polling: catch up too.
      if (!opened || pollTimer) want({ turns: true, status: true });
      opened = true;
      stopPolling();
    });
    source.addEventListener("turn", function (event) {
      var data = note(event);
      if (data.seq > wantSeq) wantSeq = data.seq;
      want({ turns: true });
    });
    source.addEventListener("delivery", function (event) { note(event); want({ turns: true }); });
    ["closed", "handed_off", "taken_over", "handed_back", "resync"].forEach(function (kind) {
      source.addEventListener(kind, function (event) { note(event); want({ turns: true, status: true }); });
    });
    source.addEventListener("summarised", function (event) { note(event); want({ summary: true }); });
    ["deleted", "expired"].forEach(function (kind) {
      source.addEventListener(kind, function (event) {
        note(event);
        gone = true;
        disconnect();
        stopPolling();
        var viewing = document.getElementById("staff-viewing");  // its ping would only meet a 404 now
        if (viewing) viewing.remove();
        say(kind === "deleted" ? "This session has been deleted." : "This session has expired (retention).");
      });
    });
    source.addEventListener("unavailable", function () { fallBack(); });
    source.addEventListener("error", function () {
      // CLOSED: refused (403, not an event stream) — EventSource gives up by itself. CONNECTING:
      // it retries by itself; after a few failures in a row, poll instead.
      if (source && (source.readyState === EventSource.CLOSED || ++errors >= ERRORS_BEFORE_FALLBACK)) fallBack();
    });
  }

  function disconnect() {
    if (source) source.close();
    source = null;
  }

  function fallBack() {
    disconnect();
    errors = 0;
    startPolling();
    if (!gone && !retryTimer && typeof EventSource !== "undefined") {
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    }
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
    if (!root || typeof htmx === "undefined") return;
    eventsUrl = root.dataset.eventsUrl;
    turnsUrl = root.dataset.turnsUrl;
    summaryUrl = root.dataset.summaryUrl;
    wantSeq = topSeq();
    connect();
    window.addEventListener("pagehide", disconnect);
    window.addEventListener("pageshow", function (event) {  // back from the bfcache
      if (event.persisted && !source && !retryTimer) connect();
    });
  }

  // htmx is loaded with defer, like this script and before it: it exists at DOMContentLoaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
