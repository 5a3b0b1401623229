/* eventlog offline tracker, for the pages of a downloaded course package opened from
   file:// (docs/offline.md). It records page views (with engaged time), video progress per
   minute (the shape of the site's player: minutes, position, visit, report id, ts) and manual
   marks in localStorage, bounded (the oldest non-mark records go first, and are counted).
   Whenever the browser is online (on every page load, on "online", every minute) it sends what
   waits to the site, oldest first, one request at a time, with the package's signed token, and
   forgets a record only once the server accepted it. Ids make a record sent twice land once.
   No dependencies, no other requests. Config: window.eventlogPackage (eventlog/package.js). */
(function () {
  "use strict";
  var P = window.eventlogPackage;
  if (!P || window.eventlogOffline) return;
  var body = document.body, nav = navigator;
  var page = body.getAttribute("data-page"), path = body.getAttribute("data-path") || "/";
  var tutorial = body.getAttribute("data-tutorial");
  // Shared by every package of this learner from this site: a newer package sends what an
  // older one (whose token may have expired) could not.
  var PREFIX = "eventlog.offline." + P.site_url + "." + (P.learner || "-") + ".";
  var QUEUE = PREFIX + "queue", DROPPED = PREFIX + "dropped", REJECTED = PREFIX + "rejected";
  var SENT = PREFIX + "sent", STATUS = PREFIX + "status", TOKEN = PREFIX + "token." + P.package_id;
  var STATE = PREFIX + "state." + P.foss + "." + P.language;
  var MAX = P.queue_max || 5000, BATCH_BYTES = 6000, BATCH_EVENTS = 50;
  // Do Not Track / Global Privacy Control: no page views (progress is the learner's own record, kept).
  var silent = P.dnt && (nav.doNotTrack === "1" || window.doNotTrack === "1" || nav.globalPrivacyControl);

  function id() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    var b = new Uint8Array(16), s = "";
    crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) s += (b[i] + 256).toString(16).slice(1);
    return s;
  }
  function read(key, fallback) {
    try { var v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch (e) { return fallback; }
  }
  function write(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); return true; } catch (e) { return false; }
  }
  function add(key, n) { if (n) write(key, read(key, 0) + n); }

  // ------------------------------------------------------------------ the queue
  function queue() { return read(QUEUE, []); }
  function enqueue(entry) {
    var q = queue();
    q.push(entry);
    while (q.length > MAX) {  // drop the oldest record that is not a mark (marks are few and decisive)
      var i = 0;
      while (i < q.length - 1 && q[i].ep === "mark") i++;
      q.splice(i, 1);
      add(DROPPED, 1);
    }
    while (!write(QUEUE, q) && q.length > 1) { q.shift(); add(DROPPED, 1); }  // storage full
    show();
    sync();
  }
  function forget(ids) {
    var gone = {};
    ids.forEach(function (i) { gone[i] = 1; });
    write(QUEUE, queue().filter(function (e) { return !gone[e.id]; }));
  }

  // ------------------------------------------------------------------ page views
  var pageViewId = id(), engaged = 0, viewedAt = Date.now();
  var visibleSince = document.visibilityState === "visible" ? viewedAt : null;
  function beacon(kind, extra) {
    // Every record of a page view carries the time it was viewed: no middleware record exists
    // offline, so whichever record the pipeline stores first (syncs of one page view's records
    // may be enriched in parallel) creates the document, and its time must be the page view's.
    var e = {kind: kind, event_id: id(), page_view_id: pageViewId, path: path, ts: viewedAt};
    for (var k in extra) if (extra[k] !== undefined && extra[k] !== null) e[k] = extra[k];
    return {id: e.event_id, ep: "collect", body: e};
  }
  function visitEnd() {
    if (visibleSince !== null) { engaged += Date.now() - visibleSince; visibleSince = null; }
    if (silent) return;
    var q = queue(), end = beacon("visit_end", {duration_ms: Math.round(engaged), title: document.title});
    // One engaged-time record per page view: the latest replaces a waiting earlier one.
    q = q.filter(function (e) { return !(e.body.kind === "visit_end" && e.body.page_view_id === pageViewId); });
    write(QUEUE, q);
    enqueue(end);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") visitEnd(); else visibleSince = Date.now();
  });
  window.addEventListener("pagehide", function () { if (player && !player.paused) report(); visitEnd(); });

  // ------------------------------------------------------------------ local progress (for display)
  function info() {
    for (var i = 0; i < P.tutorials.length; i++) if (P.tutorials[i].title === tutorial) return P.tutorials[i];
    return null;
  }
  function localState() { return read(STATE, {}); }
  function completed(title) {
    var st = localState()[title], t = null;
    if (!st) return false;
    if (st.mark === true || st.mark === false) return st.mark;
    P.tutorials.forEach(function (x) { if (x.title === title) t = x; });
    var total = Math.max(1, Math.ceil(t.length / 60));
    return (st.minutes || []).length >= Math.ceil(0.8 * total);
  }
  function percent(title) {
    var st = localState()[title] || {}, t = info();
    return t ? Math.min(100, Math.round(100 * (st.minutes || []).length / Math.max(1, Math.ceil(t.length / 60)))) : 0;
  }
  function remember(title, change) {
    var all = localState(), st = all[title] || {minutes: [], mark: null, position: 0};
    change(st);
    all[title] = st;
    write(STATE, all);
  }

  // ------------------------------------------------------------------ video progress (learners only)
  var player = page === "tutorial" ? document.getElementById("player") : null;
  var visitId = id(), played = {}, lastTime = null, lastMinute = null;
  function progressEntry(ep, fields) {
    var b = {foss: P.foss, language: P.language, tutorial: tutorial, ts: Date.now()};
    for (var k in fields) b[k] = fields[k];
    return {id: id(), ep: ep, body: b};
  }
  function report() {
    var minutes = Object.keys(played).map(Number);
    played = {};
    var position = Math.min(player.currentTime, (info() || {}).length || player.currentTime);
    remember(tutorial, function (st) {
      minutes.forEach(function (m) { if (st.minutes.indexOf(m) < 0) st.minutes.push(m); });
      st.position = Math.floor(position / 60) * 60;
    });
    if (P.learner) {
      enqueue(progressEntry("progress", {position: position, minutes: minutes, visit_id: visitId, report_id: id()}));
    }
    show();
  }
  function playedStep(from, to) {  // a longer jump than a few timeupdates is a seek, not watching
    return to >= from && to - from <= 1.5 * Math.max(1, player.playbackRate) + 0.5;
  }
  if (player) {
    player.addEventListener("timeupdate", function () {
      var now = player.currentTime;
      if (!player.seeking && lastTime !== null && playedStep(lastTime, now)) {
        for (var m = Math.floor(lastTime / 60); m <= Math.floor(now / 60); m++) played[m] = true;
      }
      lastTime = now;
      var minute = Math.floor(now / 60);
      if (lastMinute !== null && minute !== lastMinute) report();
      lastMinute = minute;
    });
    player.addEventListener("seeking", function () { lastTime = null; });
    player.addEventListener("seeked", function () { lastTime = player.currentTime; });
    player.addEventListener("pause", report);
    player.addEventListener("ended", report);
    var resume = (localState()[tutorial] || {}).position || 0;
    if (resume > 0) {
      player.addEventListener("loadedmetadata", function () { player.currentTime = resume; }, {once: true});
      if (player.readyState >= 1) player.currentTime = resume;
    }
  }
  function mark(value) {
    remember(tutorial, function (st) { st.mark = value; });
    if (P.learner) enqueue(progressEntry("mark", {completed: value}));
    show();
  }
  ["complete", "incomplete"].forEach(function (which) {
    var button = document.getElementById("mark-" + which);
    if (button) button.addEventListener("click", function () { mark(which === "complete"); });
  });

  // ------------------------------------------------------------------ sync
  // A renewed token was issued after the one it replaced (the site's clock, not this computer's).
  function token() {
    var renewed = read(TOKEN, null);
    return renewed ? renewed.token : P.token;
  }
  function keepRenewal(response) {
    var fresh = response.headers.get("X-Eventlog-Package-Renewed");
    if (fresh) write(TOKEN, {token: fresh, received: Date.now()});
  }
  function nextBatch(q) {
    var head = q[0];
    if (head.ep !== "collect") return [head];
    var batch = [], size = 20;
    for (var i = 0; i < q.length && q[i].ep === "collect" && batch.length < BATCH_EVENTS; i++) {
      size += JSON.stringify(q[i].body).length + 1;
      if (batch.length && size > BATCH_BYTES) break;
      batch.push(q[i]);
    }
    return batch;
  }
  var syncing = false, retryTimer = null;
  function later(seconds) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(sync, seconds * 1000);
  }
  function sync() {
    if (syncing || !nav.onLine) return;
    var q = queue();
    if (!q.length) return;
    var batch = nextBatch(q), head = batch[0];
    var payload = head.ep === "collect" ? {events: batch.map(function (e) { return e.body; })} : head.body;
    syncing = true;
    fetch(P[head.ep], {
      method: "POST", credentials: "omit", body: JSON.stringify(payload),
      headers: {"Content-Type": "application/json", "X-Eventlog-Package": token()}
    }).then(function (r) {
      syncing = false;
      var ids = batch.map(function (e) { return e.id; });
      if (r.ok) {
        keepRenewal(r);
        forget(ids);
        add(SENT, ids.length);
        write(STATUS, {state: "ok", at: Date.now()});
        show();
        sync();
      } else if (r.status === 400 || r.status === 401 || r.status === 413) {
        // It can never be accepted (a tutorial the site no longer has, a learner gone): counted, not retried.
        forget(ids);
        add(REJECTED, ids.length);
        show();
        sync();
      } else if (r.status === 403) {
        // Forged or expired token: keep everything; a newer package of this learner sends it.
        return r.json().then(function (answer) {
          write(STATUS, {state: answer && answer.expired ? "expired" : "refused", at: Date.now()});
          show();
        }, function () { write(STATUS, {state: "refused", at: Date.now()}); show(); });
      } else {
        later(Number(r.headers.get("Retry-After")) || 30);  // 429, 5xx: the site is busy
      }
    }, function () { syncing = false; later(60); });  // offline after all, or the site is down
  }

  // ------------------------------------------------------------------ what the learner sees
  function show() {
    var box = document.getElementById("eventlog-sync");
    var waiting = queue().length, st = read(STATUS, {}), dropped = read(DROPPED, 0);
    if (box && P.learner) {
      var text = waiting ? waiting + " records waiting to be sent to " + P.site_url + "." :
        "Everything you watched has been sent to " + P.site_url + ".";
      if (st.state === "expired") {
        text += " This download is too old to send them: download the course again from " + P.site_url +
          " (while logged in); the new copy sends them.";
        box.className = "card warn";
      }
      if (dropped) text += " " + dropped + " older records were dropped (storage limit).";
      box.textContent = text;
    }
    var statuses = document.querySelectorAll(".eventlog-status");
    for (var i = 0; i < statuses.length; i++) {
      var done = completed(statuses[i].getAttribute("data-tutorial"));
      statuses[i].textContent = done ? "Yes" : "No";
      statuses[i].className = "eventlog-status" + (done ? " done" : "");
    }
    if (tutorial && document.getElementById("completed")) {
      document.getElementById("completed").textContent = completed(tutorial) ? "Yes" : "No";
      document.getElementById("percent").textContent = percent(tutorial);
    }
  }

  var scr = window.screen || {}, tz;
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) {}
  if (!silent) enqueue(beacon("pageview", {
    title: document.title.slice(0, 1024), screen_width: scr.width, screen_height: scr.height,
    viewport_width: window.innerWidth, viewport_height: window.innerHeight,
    language: (nav.language || "").slice(0, 35), timezone: tz
  }));
  show();
  sync();  // what earlier pages (or an older package of this learner) could not send
  window.addEventListener("online", sync);
  setInterval(sync, 60000);

  window.eventlogOffline = {
    pageViewId: pageViewId, sync: sync,
    queued: function () { return queue().length; },
    status: function () { return read(STATUS, {}); },
    dropped: function () { return read(DROPPED, 0); }
  };
})();
