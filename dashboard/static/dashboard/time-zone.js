// The header's time zone picker (partials/time_zone_picker.html). While the staff member has not
// chosen a zone (data-tz-chosen="0"), propose the browser's once: POST it with source=browser
// (the server ignores that when a zone has been chosen meanwhile) and reload so that every time
// on the page is shown in it. "Use this browser's zone" fills the form with it.
(function () {
  "use strict";
  var picker = document.getElementById("tz-picker");
  if (!picker) return;
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var button = document.getElementById("tz-browser");
  var input = document.getElementById("tz-input");
  if (zone && button && input) {
    button.textContent = "Use this browser's zone (" + zone + ")";
    button.hidden = false;
    button.addEventListener("click", function () { input.value = zone; input.focus(); });
  }
  if (picker.dataset.tzChosen !== "0" || !zone) return;
  var key = "mangaassist.tz-proposed";
  try {
    if (window.sessionStorage.getItem(key)) return;  // once per browser session, also after a failure
    window.sessionStorage.setItem(key, zone);
  } catch (e) { /* storage unavailable: the server's answer still ends it */ }
  var token = picker.querySelector("input[name=csrfmiddlewaretoken]");
  var body = new URLSearchParams();
  body.set("time_zone", zone);
  body.set("source", "browser");
  if (token) body.set("csrfmiddlewaretoken", token.value);
  fetch(picker.dataset.tzUrl, {
    method: "POST", body: body, credentials: "same-origin",
    headers: {"X-CSRFToken": token ? token.value : ""},
  }).then(function (response) {
    if (response.status === 204 && zone !== "UTC") window.location.reload();
    else if (response.status === 204) {
      picker.dataset.tzChosen = "1";
      var current = document.getElementById("tz-current");
      if (current) current.textContent = zone;
      var note = picker.querySelector(".tz-default");
      if (note) note.remove();
    }
  }).catch(function () { /* offline: times stay in UTC, labelled so */ });
})();
