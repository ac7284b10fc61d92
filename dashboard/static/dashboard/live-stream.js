// One EventSource on the SSE server (sessions_app/live) with the console's rules, for live.js (a
// session's page) and live-list.js (the queue, the sessions list):
//
// - a new EventSource does not send Last-Event-ID, so a reconnect says it in the query instead;
// - the stream is "away" when the server says `unavailable`, refuses the stream (CLOSED), or fails
//   3 times in a row: onAway() (the page polls), and the stream is tried again after 30 s,
//   doubling to 5 min while it keeps failing;
// - onOpen(catchUp): catchUp is true on the first open (that subscription carries no
//   Last-Event-ID: a change between the page's render and now would be missed), back from being
//   away, and back from the bfcache — the page then re-reads what it shows, once.
//
// MangaLive.follow(url, {on: {kind: fn(data, event)}, onOpen, onAway}) → {stop}; stop() ends the
// stream for good (the session was deleted).
(function () {
  "use strict";
  var RETRY_FIRST_MS = 30000, RETRY_MAX_MS = 300000, ERRORS_BEFORE_AWAY = 3;

  function follow(eventsUrl, options) {
    var on = options.on || {}, onOpen = options.onOpen || function () {}, onAway = options.onAway || function () {};
    var source = null, lastEventId = "", errors = 0, retryMs = RETRY_FIRST_MS, retryTimer = null;
    var opened = false, away = false, stopped = false;

    function url() {
      if (!lastEventId) return eventsUrl;
      return eventsUrl + (eventsUrl.indexOf("?") < 0 ? "?" : "&") + "last_event_id=" + encodeURIComponent(lastEventId);
    }

    function data(event) {
      if (event.lastEventId) lastEventId = event.lastEventId;
      errors = 0;
      try { return JSON.parse(event.data) || {}; } catch (e) { return {}; }
    }

    function connect() {
      retryTimer = null;
      if (stopped) return;
      if (typeof EventSource === "undefined") return goAway();
      source = new EventSource(url(), { withCredentials: true });
      source.addEventListener("open", function () {
        errors = 0;
        retryMs = RETRY_FIRST_MS;
        var catchUp = !opened || away;
        opened = true;
        away = false;
        onOpen(catchUp);
      });
      Object.keys(on).forEach(function (kind) {
        source.addEventListener(kind, function (event) { if (!stopped) on[kind](data(event), event); });
      });
      source.addEventListener("unavailable", goAway);
      source.addEventListener("error", function () {
        // CLOSED: refused (403, not an event stream) — EventSource gives up by itself. CONNECTING:
        // it retries by itself; after a few failures in a row, the page polls instead.
        if (source && (source.readyState === EventSource.CLOSED || ++errors >= ERRORS_BEFORE_AWAY)) goAway();
      });
    }

    function disconnect() {
      if (source) source.close();
      source = null;
    }

    function goAway() {
      disconnect();
      errors = 0;
      if (stopped) return;
      away = true;
      onAway();
      if (!retryTimer && typeof EventSource !== "undefined") {
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    }

    function stop() {
      stopped = true;
      disconnect();
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
    }

    connect();
    window.addEventListener("pagehide", disconnect);
    window.addEventListener("pageshow", function (event) {  // back from the bfcache: catch up
      if (event.persisted && !stopped && !source && !retryTimer) {
        away = true;
        connect();
      }
    });
    return { stop: stop };
  }

  window.MangaLive = { follow: follow };
})();
