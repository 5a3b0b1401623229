/* eventlog tracker: page title, screen, engaged time, exit links, optional
   precise location; queued in localStorage while offline. No dependencies,
   no third-party calls. Configured by the data-eventlog attribute that the
   {% eventlog_tracker %} template tag writes. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.eventlog) return;
  var cfg = JSON.parse(script.getAttribute("data-eventlog") || "{}");
  var nav = navigator;
  if (cfg.dnt && (nav.doNotTrack === "1" || window.doNotTrack === "1" || nav.globalPrivacyControl)) return;

  var QUEUE = "eventlog.queue", DROPPED = "eventlog.dropped";
  var endpoint = cfg.endpoint, max = cfg.queueMax || 200;

  function id() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    var b = new Uint8Array(16), s = "";
    crypto.getRandomValues(b);
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) s += (b[i] + 256).toString(16).slice(1);
    return s;
  }

  var pageViewId = cfg.pv || id(), viewedAt = Date.now();

  function load() {
    try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; }
  }
  function save(q) {
    try { localStorage.setItem(QUEUE, JSON.stringify(q)); } catch (e) { /* storage full or off */ }
  }
  // Bounded: the oldest events go first, and how many were dropped is kept.
  function enqueue(events) {
    var q = load().concat(events), over = q.length - max;
    if (over > 0) {
      q = q.slice(over);
      try { localStorage.setItem(DROPPED, String(+(localStorage.getItem(DROPPED) || 0) + over)); } catch (e) {}
    }
    save(q);
  }
  function forget(sent) {
    var ids = {};
    sent.forEach(function (e) { ids[e.event_id] = 1; });
    save(load().filter(function (e) { return !ids[e.event_id]; }));
  }

  function post(events) {
    return fetch(endpoint, {
      method: "POST", body: JSON.stringify({events: events}), keepalive: true,
      // cfg.cred: the endpoint is another origin of the same site (EVENTLOG_COLLECT_URL) that
      // lets this page send its cookies (EVENTLOG_TRACKER_CREDENTIAL_ORIGINS): one visitor id.
      credentials: cfg.cred ? "include" : "same-origin", headers: {"Content-Type": "application/json"}
    }).then(function (r) {
      // 4xx other than 429 will never succeed: drop rather than retry forever.
      if (r.ok || (r.status >= 400 && r.status < 500 && r.status !== 429)) return true;
      throw new Error("status " + r.status);
    });
  }

  // While the page lives: try now, keep what failed for later.
  function send(event) {
    if (!nav.onLine) { enqueue([event]); return; }
    post([event]).catch(function () { enqueue([event]); });
  }

  // As the page goes away there is no time for an answer: a beacon, which the
  // browser delivers after the page is gone. If it cannot even be queued, keep it.
  function sendFinal(event) {
    var body = JSON.stringify({events: [event]});
    if (!nav.onLine || !nav.sendBeacon || !nav.sendBeacon(endpoint, body)) enqueue([event]);
  }

  var flushing = false;
  function flush() {
    if (flushing || !nav.onLine) return;
    var q = load().slice(0, 50);
    if (!q.length) return;
    flushing = true;
    post(q).then(function () { forget(q); flushing = false; flush(); },
                 function () { flushing = false; });
  }

  function event(kind, extra) {
    // The records of a page view carry the time it was viewed: on a page without the middleware's
    // record (a cached page, another site), whichever the pipeline stores first creates the
    // document (records are enriched in parallel), and its time must be the page view's, not
    // the time the tab was left. An exit link is its own record, at the time of the click.
    var e = {kind: kind, event_id: id(), page_view_id: pageViewId, path: location.pathname,
             ts: kind === "exit" ? Date.now() : viewedAt};
    for (var k in extra) if (extra[k] !== undefined && extra[k] !== null) e[k] = extra[k];
    return e;
  }

  // Engaged time: counted only while the page is visible.
  var engaged = 0, visibleSince = document.visibilityState === "visible" ? Date.now() : null;
  function engagedMs() {
    return engaged + (visibleSince === null ? 0 : Date.now() - visibleSince);
  }
  function visitEnd() {
    sendFinal(event("visit_end", {duration_ms: Math.round(engagedMs()), title: document.title,
                                  referrer: document.referrer}));
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      if (visibleSince !== null) { engaged += Date.now() - visibleSince; visibleSince = null; }
      visitEnd();
    } else {
      visibleSince = Date.now();
    }
  });
  window.addEventListener("pagehide", function () {
    if (visibleSince !== null) { engaged += Date.now() - visibleSince; visibleSince = null; }
    visitEnd();
  });

  // Exit links: recorded without delaying the navigation.
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest ? e.target.closest("a[href]") : null;
    if (!a || !/^https?:$/.test(a.protocol) || a.host === location.host) return;
    sendFinal(event("exit", {url: a.href.slice(0, 2048)}));
  }, true);

  window.addEventListener("online", flush);

  var scr = window.screen || {};
  var tz;
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) {}
  send(event("pageview", {
    title: document.title.slice(0, 1024), referrer: document.referrer.slice(0, 2048),
    screen_width: scr.width, screen_height: scr.height,
    viewport_width: window.innerWidth, viewport_height: window.innerHeight,
    language: (nav.language || "").slice(0, 35), timezone: tz
  }));
  flush();

  if (cfg.geo && nav.geolocation) {
    nav.geolocation.getCurrentPosition(function (p) {
      send(event("location", {latitude: p.coords.latitude, longitude: p.coords.longitude,
                              accuracy: p.coords.accuracy}));
    }, function () { /* denied or unavailable: the GeoIP location stays */ }, {maximumAge: 600000, timeout: 10000});
  }

  window.eventlog = {pageViewId: pageViewId, flush: flush, queued: function () { return load().length; }};
})();
