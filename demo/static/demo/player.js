/* Reports what a logged-in learner actually watches: the minutes really played
   (not skipped by seeking), whenever the minute changes and on pause/end.
   Only included on the watch page for logged-in users. */
(function () {
  "use strict";
  var video = document.getElementById("player");
  if (!video || !video.dataset.progressUrl) return;
  var d = video.dataset;

  function id() { return crypto.randomUUID().replace(/-/g, ""); }
  var visitId = id();
  var played = {};          // minutes played since the last report
  var lastTime = null;      // where the previous timeupdate left the playhead
  var lastMinute = null;

  function show(state) {
    document.getElementById("completed").textContent = state.completed ? "Yes" : "No";
    document.getElementById("percent").textContent = state.percent_watched;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-CSRFToken": d.csrf}
    }).then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); });
  }

  function report() {
    var minutes = Object.keys(played).map(Number);
    played = {};
    post(d.progressUrl, {
      foss: d.foss, language: d.language, tutorial: d.tutorial, position: video.currentTime,
      minutes: minutes, visit_id: visitId, report_id: id()
    }).then(show, function () { /* the next report carries on */ });
  }

  // A step no longer than a few timeupdate intervals (at this playback rate) is
  // playing; a longer jump is a seek, and the minutes jumped over were not watched.
  function playedStep(from, to) {
    return to >= from && to - from <= 1.5 * Math.max(1, video.playbackRate) + 0.5;
  }

  video.addEventListener("timeupdate", function () {
    var now = video.currentTime;
    if (!video.seeking && lastTime !== null && playedStep(lastTime, now)) {
      for (var m = Math.floor(lastTime / 60); m <= Math.floor(now / 60); m++) played[m] = true;
    }
    lastTime = now;
    var minute = Math.floor(now / 60);
    if (lastMinute !== null && minute !== lastMinute) report();
    lastMinute = minute;
  });
  video.addEventListener("seeking", function () { lastTime = null; });
  video.addEventListener("seeked", function () { lastTime = video.currentTime; });
  video.addEventListener("pause", report);
  video.addEventListener("ended", report);

  function mark(completed) {
    post(d.markUrl, {foss: d.foss, language: d.language, tutorial: d.tutorial, completed: completed}).then(show);
  }
  document.getElementById("mark-complete").addEventListener("click", function () { mark(true); });
  document.getElementById("mark-incomplete").addEventListener("click", function () { mark(false); });

  var resume = Number(d.resume || 0);
  if (resume > 0) {
    video.addEventListener("loadedmetadata", function () { video.currentTime = resume; }, {once: true});
    if (video.readyState >= 1) video.currentTime = resume;
  }
})();
