/* eventlog dashboard: the panels that poll. The live view asks live.json every
 * few seconds (visitors and page views of the last 5 and 30 minutes, the pages
 * they are on); the operations panel asks health/ every 15 s. Loaded after
 * dashboard.js, whose drawing helpers it uses (window.eventlogDashboard.lib). */
(function () {
  "use strict";

  var state = window.eventlogDashboard;
  if (!state || !state.lib) return;  // dashboard.js did not run
  var lib = state.lib, draw = lib.draw, baseOptions = lib.baseOptions, fmt = lib.fmt;
  var PALETTE = lib.PALETTE, GRID = lib.GRID, MUTED = lib.MUTED;

  // ------------------------------------------------------------ health panel

  function setHealth(key, html) {
    var el = document.querySelector('#health [data-h="' + key + '"]');
    if (el) el.innerHTML = html;
  }

  function pill(ok, yes, no) { return '<span class="pill ' + (ok ? "ok" : "bad") + '">' + (ok ? yes : no) + "</span>"; }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
    return (n / 1048576).toFixed(1) + " MB";
  }

  function seconds(s) {
    if (s == null) return "–";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function showHealth(body, status) {
    var healthy = status === 200;
    setHealth("status", pill(healthy, "healthy", (body.status || "degraded") + " (" + status + ")"));
    setHealth("broker", pill(body.broker, "up", "down"));
    setHealth("store", pill(body.store, "up", "down"));
    var stages = body.stages || {};
    // Per stage: messages waiting and how long the oldest event has waited.
    function stage(name) {
      var st = stages[name];
      if (!st) return "–";
      var late = st.oldest_age_seconds != null && st.oldest_age_seconds > body.max_age_seconds;
      var age = st.oldest_age_seconds == null ? "" :
        '<br><small class="' + (late ? "late" : "") + '">oldest ' + seconds(st.oldest_age_seconds) + "</small>";
      return fmt.format(st.messages || 0) + " <small>waiting</small>" + age;
    }
    setHealth("enrich", stage("eventlog.enrich"));
    setHealth("storeq", stage("eventlog.store"));
    var spool = body.spool || {};
    // dropped: events a full spool (EVENTLOG_SPOOL_MAX_BYTES) or disk refused (docs/retention.md).
    var dropped = spool.dropped ? ' <span class="pill warn">' + fmt.format(spool.dropped) + " dropped</span>" : "";
    setHealth("spool", (spool.bytes ? bytes(spool.bytes) + " <small>(" + spool.segments + " seg., oldest " +
      seconds(spool.oldest_age_seconds) + ")</small>" : "empty") + dropped);
    var dead = body.dead_letters;
    setHealth("dead", dead == null ? "–" : (dead ? '<span class="pill warn">' + fmt.format(dead) + "</span>" : "0"));
    setHealth("lag", seconds(body.last_lag_seconds));
    setHealth("events", body.events == null ? "–" : fmt.format(body.events));
  }

  function pollHealth() {
    var box = document.getElementById("health");
    if (!box) return;
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { showHealth(body, r.status); }); })
      .catch(function () { setHealth("status", pill(false, "", "no answer")); });
  }

  // ------------------------------------------------------------ live view

  function setLive(key, text) {
    var el = document.querySelector('[data-live="' + key + '"]');
    if (el) el.textContent = text;
  }

  function livePages(pages) {
    var body = document.querySelector('#live-panel table[data-table="live-pages"] tbody');
    if (!body) return;
    var rows = pages.map(function (p) {
      // Paths and titles are visitor-controlled text: textContent, never innerHTML.
      var tr = document.createElement("tr"), page = document.createElement("td"), n = document.createElement("td");
      page.textContent = p.path || "(unknown)";
      if (p.title) page.title = p.title;
      n.className = "num";
      n.textContent = fmt.format(p.visitors);
      tr.appendChild(page);
      tr.appendChild(n);
      return tr;
    });
    if (!rows.length) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = 2;
      td.className = "empty";
      td.textContent = "Nobody in the last 5 minutes";
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  }

  function liveChart(perMinute) {
    var labels = perMinute.map(function (_, i) { return i === perMinute.length - 1 ? "now" : "-" + (perMinute.length - 1 - i) + "m"; });
    var chart = state.charts.live;
    if (chart) {  // update in place: redrawing from scratch every few seconds flickers
      chart.data.labels = labels;
      chart.data.datasets[0].data = perMinute;
      chart.update("none");
      return;
    }
    draw("live", {
      type: "bar",
      data: { labels: labels, datasets: [{ label: "Page views", data: perMinute, backgroundColor: PALETTE[1],
                                            borderRadius: 2, barPercentage: 0.9, categoryPercentage: 1 }] },
      options: baseOptions({ scales: {
        x: { grid: { display: false }, ticks: { color: MUTED, maxRotation: 0, autoSkipPadding: 12 } },
        y: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } } } }),
    }, false);
  }

  function showLive(figures) {
    var w = figures.windows || [];
    w.forEach(function (win) {
      setLive("visitors-" + win.minutes, fmt.format(win.visitors));
      setLive("views-" + win.minutes, fmt.format(win.page_views));
    });
    livePages(figures.pages || []);
    if (window.Chart) liveChart(figures.per_minute || []);
    var when = new Date(figures.now);
    setLive("updated", "updated " + when.toLocaleTimeString("en-GB", { timeZone: "UTC" }) + " UTC" +
            (figures.truncated ? " · busiest minutes only" : ""));
    state.live.figures = figures;
    state.live.updates += 1;
  }

  function pollLive() {
    var box = document.getElementById("live-panel");
    if (!box) return;
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(showLive)
      .catch(function () { setLive("updated", "no answer from the store"); });
  }

  function startLive() {
    var box = document.getElementById("live-panel");
    if (!box) return;
    pollLive();
    setInterval(pollLive, 1000 * (Number(box.dataset.seconds) || 5));
  }

  try {
    pollHealth();
    setInterval(pollHealth, 15000);
    startLive();
  } catch (err) {
    lib.fail("panels", err);
  }
})();
