/* Reports what a logged-in learner actually watches: the minutes really played
   (not skipped by seeking), whenever the minute changes, on pause/end and when
   the page goes away. Only included on the watch page for logged-in users.

   Reports and manual marks wait in localStorage until the server has them: a
   learner on a bad connection (or watching offline) loses nothing, and what was
   queued is sent when the browser is back online or on the next watch page. The
   server's rules are idempotent, so sending one twice is harmless; its "ts" says
   when it was made, so a late one cannot move the resume position or a mark back. */
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
      method: "POST", credentials: "same-origin", body: JSON.stringify(body), keepalive: true,
      headers: {"Content-Type": "application/json", "X-CSRFToken": d.csrf}
    }).then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); });
  }

  // One queue per learner: a report is only ever sent in its own author's session.
  var QUEUE = "eventlog.progress." + d.user, MAX_QUEUED = 500;
  function queued() {
    try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; }
  }
  function store(q) {
    try { localStorage.setItem(QUEUE, JSON.stringify(q.slice(-MAX_QUEUED))); } catch (e) { /* full or off */ }
  }
  function forget(entry) {
    store(queued().filter(function (e) { return e.id !== entry.id; }));
  }
  function isThisVideo(body) {
    return body.foss === d.foss && body.language === d.language && body.tutorial === d.tutorial;
  }

  // Sent one at a time, oldest first, so a mark and the reports around it keep their order.
  var sending = false;
  function flush() {
    var next = queued()[0];
    if (sending || !next || !navigator.onLine) return;
    sending = true;
    post(next.url, next.body).then(function (state) {
      forget(next);
      // The answer is the state after this entry; a later one for this video would make it stale.
      if (isThisVideo(next.body) && !queued().some(function (e) { return isThisVideo(e.body); })) show(state);
      sending = false;
      flush();
    }, function (status) {
      sending = false;
      // 400: it can never be valid. Anything else (offline, 5xx, logged out): keep it.
      if (status === 400) { forget(next); flush(); }
    });
  }

  function send(url, fields) {
    var body = {foss: d.foss, language: d.language, tutorial: d.tutorial, ts: Date.now()};
    for (var k in fields) body[k] = fields[k];
    var q = queued();
    q.push({id: id(), url: url, body: body});
    store(q);
    flush();
  }

  function report() {
    var minutes = Object.keys(played).map(Number);
    played = {};
    send(d.progressUrl, {position: video.currentTime, minutes: minutes, visit_id: visitId, report_id: id()});
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
  // Leaving while the video plays: the minutes since the last report go too.
  window.addEventListener("pagehide", function () { if (!video.paused) report(); });
  window.addEventListener("online", flush);

  function mark(completed) {
    document.getElementById("completed").textContent = completed ? "Yes" : "No";  // what the learner asked for
    send(d.markUrl, {completed: completed});
  }
  document.getElementById("mark-complete").addEventListener("click", function () { mark(true); });
  document.getElementById("mark-incomplete").addEventListener("click", function () { mark(false); });

  var resume = Number(d.resume || 0);
  if (resume > 0) {
    video.addEventListener("loadedmetadata", function () { video.currentTime = resume; }, {once: true});
    if (video.readyState >= 1) video.currentTime = resume;
  }

  flush();  // what an earlier page could not send
})();
