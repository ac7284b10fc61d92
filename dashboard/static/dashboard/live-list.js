// Live updates of a list page (the "needs a human" queue, the session list): an EventSource on the
// SSE server's activity stream (sessions_app/live), and an htmx refresh of the page's live region
// (its partial) when a change the list shows is reported — no reload.
// Configured by the #live-list element:
//   data-events-url       the activity stream ({% live_events_url 'activity' %})
//   data-rows-url         the region's partial (same filter and page as the page itself)
//   data-region           the region's selector; the partial answers that element whole (outerHTML)
//   data-kinds            the event kinds that refresh it (space-separated); "resync" always does
//   data-min-gap-ms       at least this long between two refreshes (default 1500)
//   data-count-settle-ms  refresh once more this long after the last one (the title's count is
//                         memoised per process for 5 s: the list page's count catches up)
//   data-track="queue"    the queue: after a refresh, a handed_off session must be listed and a
//                         taken-over / handed-back / closed one must not; if the index has not
//                         caught up yet, try again after 1/2/4 s
//
// Events come in bursts: refreshes are debounced (250 ms) and spaced (min gap), and never run two
// at a time. The region's data-queue-count (when the partial says it) becomes the page title's
// "(n)" and the nav's count badge. A region holding the focus (a "Take over" button being
// clicked) is refreshed once the focus leaves it.
// The stream's rules (reconnects, catching up once it opens, when it counts as away) are
// live-stream.js's; while it is away the list polls every 10 s and says so.
(function () {
  "use strict";
  var POLL_MS = 10000, DEBOUNCE_MS = 250, STALE_RETRIES = 3;
  var PRESENT = { handed_off: true }, ABSENT = { taken_over: true, handed_back: true, closed: true, deleted: true, expired: true };

  var root, eventsUrl, rowsUrl, regionSel, kinds = {}, minGapMs = 1500, settleMs = 0, track = "";
  var pollTimer = null;
  var dirty = false, timer = null, inFlight = false, lastRefresh = 0, settleTimer = null, settleArmed = false;
  var waitingForBlur = false;
  var expect = {}, staleRetries = 0;

  function say(text) {
    root.textContent = text;
    root.hidden = !text;
  }

  function region() { return document.querySelector(regionSel); }

  function focused(el) {
    return el && el.contains(document.activeElement) && document.activeElement !== document.body;
  }

  // --- the title's count ------------------------------------------------------------------------
  function showCount(el) {
    if (!el || !el.hasAttribute("data-queue-count")) return;
    var raw = el.getAttribute("data-queue-count");
    if (raw === "" || isNaN(parseInt(raw, 10))) return;  // unknown: leave what the page says
    var n = parseInt(raw, 10);
    var base = document.title.replace(/^\(\d+\)\s+/, "");
    document.title = n > 0 ? "(" + n + ") " + base : base;
    var link = document.getElementById("nav-handoffs");
    if (!link) return;
    var badge = link.querySelector(".count-badge");
    if (n > 0) {
      if (!badge) {
        link.appendChild(document.createTextNode(" "));
        badge = document.createElement("span");
        badge.className = "count-badge";
        link.appendChild(badge);
      }
      badge.textContent = String(n);
      badge.setAttribute("data-waiting", String(n));
    } else if (badge) {
      badge.remove();
    }
  }

  // --- refreshing the region --------------------------------------------------------------------
  // ``changed``: a reported change (arms the one settle refresh); polls and settles pass false.
  function want(changed) {
    dirty = true;
    if (changed !== false) settleArmed = true;
    schedule(DEBOUNCE_MS);
  }

  function schedule(delay) {
    if (timer || inFlight) return;  // a refresh is coming (or running: it looks at dirty after)
    var wait = Math.max(delay, lastRefresh + minGapMs - Date.now());
    timer = setTimeout(refresh, wait);
  }

  function unmet() {
    var el = region();
    if (!el) return false;
    return Object.keys(expect).some(function (id) {
      var listed = false;
      el.querySelectorAll("tr[data-session-id]").forEach(function (tr) {
        if (tr.getAttribute("data-session-id") === id) listed = true;
      });
      return listed !== expect[id];
    });
  }

  function refresh() {
    timer = null;
    var el = region();
    if (!el || !dirty) return;
    if (focused(el)) {  // do not pull the button from under the click: once the focus leaves
      if (!waitingForBlur) {
        waitingForBlur = true;
        el.addEventListener("focusout", function () {
          waitingForBlur = false;
          setTimeout(function () { schedule(0); }, 0);
        }, { once: true });
      }
      return;
    }
    dirty = false;
    inFlight = true;
    lastRefresh = Date.now();
    htmx.ajax("GET", rowsUrl, { target: regionSel, swap: "outerHTML" }).then(function () {
      showCount(region());
      if (track === "queue" && unmet() && staleRetries < STALE_RETRIES) {
        // The queue index (or the META read) has not caught up with the event yet.
        var delay = 1000 * Math.pow(2, staleRetries++);
        setTimeout(function () { want(false); }, delay);
      } else {
        staleRetries = 0;
        expect = {};
      }
    }, function () { /* an error answer is not swapped: the next event or poll tries again */ })
      .then(function () {
        inFlight = false;
        if (dirty) schedule(0);
        if (settleMs && settleArmed) {
          settleArmed = false;
          if (settleTimer) clearTimeout(settleTimer);
          settleTimer = setTimeout(function () { settleTimer = null; want(false); }, settleMs);
        }
      });
  }

  // --- the stream (live-stream.js) -------------------------------------------------------------
  function onChange(kind) {
    return function (data) {
      if (track === "queue" && data.session_id) {
        if (PRESENT[kind]) expect[data.session_id] = true;
        else if (ABSENT[kind]) expect[data.session_id] = false;
      }
      staleRetries = 0;
      want();
    };
  }

  function handlers() {
    var on = {};
    Object.keys(kinds).forEach(function (kind) { on[kind] = onChange(kind); });
    on.resync = function () { want(false); };
    return on;
  }

  // --- polling, while the stream is away --------------------------------------------------------
  function startPolling() {
    if (pollTimer) return;
    say("Live updates unavailable: refreshing every 10 s.");
    pollTimer = setInterval(function () { if (!document.hidden) want(false); }, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  function start() {
    root = document.getElementById("live-list");
    if (!root || typeof htmx === "undefined" || !window.MangaLive) return;
    eventsUrl = root.dataset.eventsUrl;
    rowsUrl = root.dataset.rowsUrl;
    regionSel = root.dataset.region;
    track = root.dataset.track || "";
    (root.dataset.kinds || "").split(/\s+/).forEach(function (k) { if (k) kinds[k] = true; });
    if (root.dataset.minGapMs) minGapMs = parseInt(root.dataset.minGapMs, 10) || minGapMs;
    if (root.dataset.countSettleMs) settleMs = parseInt(root.dataset.countSettleMs, 10) || 0;
    if (!eventsUrl || !rowsUrl || !regionSel) return;
    window.MangaLive.follow(eventsUrl, {
      on: handlers(),
      onOpen: function (catchUp) {
        if (catchUp) want(false);
        stopPolling();
        say("");
      },
      onAway: startPolling
    });
  }

  // htmx is loaded with defer, like this script and before it: it exists at DOMContentLoaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
