/* eventlog dashboard: draws the charts from the figures the page embeds
 * (#eventlog-dashboard-data). Chart.js and chartjs-chart-geo are vendored under
 * static/eventlog/vendor/ (no CDN). The panels that poll (live view, health)
 * are dashboard_panels.js, which uses draw() and friends from here.
 *
 * Every canvas[data-chart] gets data-rendered="1" once drawn (or "empty" when
 * its range has no data); window.eventlogDashboard exposes the charts and any
 * errors, for tests and curious operators, and (live) the live view's latest
 * answer and how many times it was drawn. */
(function () {
  "use strict";

  var state = { charts: {}, errors: [], ready: false, live: { updates: 0, figures: null } };
  window.eventlogDashboard = state;

  var PALETTE = ["#4263eb", "#15aabf", "#f59f00", "#e8590c", "#12b886", "#ae3ec9", "#fa5252", "#82c91e",
                 "#1c7ed6", "#7048e8", "#fd7e14", "#0ca678"];
  var NAVY = "#1b2a4a", GRID = "#eef0f5", MUTED = "#6b7386";
  var fmt = new Intl.NumberFormat("en");

  function fail(where, err) {
    state.errors.push(where + ": " + (err && err.message ? err.message : err));
    if (window.console) console.error("eventlog dashboard, " + where, err);
  }

  function canvas(name) { return document.querySelector('canvas[data-chart="' + name + '"]'); }

  function markEmpty(el) {
    el.dataset.rendered = "empty";
    var box = el.parentNode;
    var note = document.createElement("div");
    note.className = "chart-empty";
    note.textContent = "No data for this range";
    note.style.cssText = "position:absolute;inset:0;display:flex;align-items:center;justify-content:center;" +
      "color:" + MUTED + ";font-size:.9rem";
    box.appendChild(note);
  }

  function draw(name, config, empty) {
    var el = canvas(name);
    if (!el) return null;
    try {
      if (state.charts[name]) state.charts[name].destroy();
      var chart = new Chart(el, config);
      state.charts[name] = chart;
      el.dataset.rendered = "1";
      if (empty) markEmpty(el);
      return chart;
    } catch (err) {
      fail(name, err);
      return null;
    }
  }

  function shorten(text, n) {
    text = String(text == null ? "(unknown)" : text);
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function baseOptions(extra) {
    var options = {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: {} } },
    };
    return Object.assign(options, extra || {});
  }

  function hbar(name, rows, labelOf, valueOf, color, maxLabel) {
    var labels = rows.map(labelOf), values = rows.map(valueOf);
    return draw(name, {
      type: "bar",
      data: { labels: labels, datasets: [{ data: values, backgroundColor: color || PALETTE[0], borderRadius: 4,
                                            maxBarThickness: 18 }] },
      options: baseOptions({
        indexAxis: "y",
        scales: {
          x: { grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } },
          y: { grid: { display: false }, ticks: { color: NAVY, callback: function (v) { return shorten(labels[v], maxLabel || 34); } } },
        },
      }),
    }, !rows.length);
  }

  function doughnut(name, rows, labelOf) {
    var top = rows.slice(0, 7), rest = rows.slice(7).reduce(function (s, r) { return s + r.count; }, 0);
    var labels = top.map(labelOf), values = top.map(function (r) { return r.count; });
    if (rest > 0) { labels.push("Other"); values.push(rest); }
    return draw(name, {
      type: "doughnut",
      data: { labels: labels, datasets: [{ data: values, backgroundColor: PALETTE, borderWidth: 2, borderColor: "#fff" }] },
      options: baseOptions({
        cutout: "58%",
        plugins: { legend: { display: true, position: "right", labels: { boxWidth: 12, color: NAVY } } },
      }),
    }, !rows.length);
  }

  // ------------------------------------------------------------ the charts

  function traffic(rows) {
    var labels = rows.map(function (r) { return r.day; });
    var series = [["Page views", "page_views", PALETTE[0], true], ["Visits", "visits", PALETTE[2], false],
                  ["Visitors", "unique_visitors", PALETTE[1], false],
                  ["Tutorial views", "tutorial_views", PALETTE[4], false], ["Bot views", "bot_views", "#adb5bd", false]];
    var any = rows.some(function (r) { return r.page_views || r.bot_views; });
    draw("traffic", {
      type: "line",
      data: {
        labels: labels,
        datasets: series.map(function (s) {
          return { label: s[0], data: rows.map(function (r) { return r[s[1]] || 0; }), borderColor: s[2],
                   backgroundColor: s[2] + "22", fill: s[3], tension: 0.25, pointRadius: rows.length > 60 ? 0 : 2,
                   borderWidth: 2 };
        }),
      },
      options: baseOptions({
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: true, position: "top", align: "end", labels: { boxWidth: 12, color: NAVY } } },
        scales: {
          x: { grid: { display: false }, ticks: { color: MUTED, maxRotation: 0, autoSkipPadding: 18 } },
          y: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } },
        },
      }),
    }, !any);
  }

  function worldMap(rows, url) {
    var el = canvas("map");
    if (!el) return Promise.resolve();
    if (!window.ChartGeo) { fail("map", "chartjs-chart-geo did not load"); return Promise.resolve(); }
    var byCode = {};
    rows.forEach(function (r) { if (r.country_code) byCode[r.country_code] = r; });
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("world map: HTTP " + response.status);
        return response.json();
      })
      .then(function (world) {
        var features = ChartGeo.topojson.feature(world, world.objects.countries).features
          .filter(function (f) { return f.properties.a2 !== "AQ"; });  // Antarctica: space, not visitors
        var chart = draw("map", {
          type: "choropleth",
          data: {
            labels: features.map(function (f) { return f.properties.name; }),
            datasets: [{
              label: "Page views", outline: features, showOutline: true,
              data: features.map(function (f) {
                var row = byCode[f.properties.a2];
                return { feature: f, value: row ? row.count : undefined };  // undefined: "missing" colour
              }),
              borderColor: "#ffffff", borderWidth: 0.5,
            }],
          },
          options: baseOptions({
            showOutline: true,
            plugins: {
              legend: { display: false },
              tooltip: { callbacks: { label: function (ctx) {
                var row = byCode[ctx.raw.feature.properties.a2];
                return ctx.raw.feature.properties.name + ": " + fmt.format(row ? row.count : 0) + " views";
              } } },
            },
            scales: {
              projection: { axis: "x", projection: "equalEarth" },
              // Logarithmic: one country with most of the traffic would leave the rest white.
              color: { type: "colorLogarithmic", axis: "x", interpolate: "blues", missing: "#e9ecf2",
                       legend: { position: "bottom-left", align: "right" },
                       ticks: { color: MUTED, callback: function (v) { return fmt.format(v); } } },
            },
          }),
        }, !rows.length);
        return chart;
      })
      .catch(function (err) { fail("map", err); });
  }

  function funnel(funnels, index) {
    var f = funnels[index] || { steps: [] };
    var labels = f.steps.map(function (s, i) { return shorten((i + 1) + ". " + s.tutorial, 24); });
    draw("funnel", {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "Started", data: f.steps.map(function (s) { return s.learners; }), backgroundColor: PALETTE[1],
            borderRadius: 4, maxBarThickness: 16 },
          { label: "Completed", data: f.steps.map(function (s) { return s.completions; }), backgroundColor: PALETTE[4],
            borderRadius: 4, maxBarThickness: 16 },
        ],
      },
      options: baseOptions({
        indexAxis: "y",
        plugins: { legend: { display: true, position: "top", align: "end", labels: { boxWidth: 12, color: NAVY } } },
        scales: {
          x: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } },
          y: { grid: { display: false }, ticks: { color: NAVY } },
        },
      }),
    }, !f.steps.length);
  }

  function courses(rows) {
    var buckets = [["pct_0_25", "0–25 %", "#ffd8a8"], ["pct_25_50", "25–50 %", "#ffa94d"],
                   ["pct_50_75", "50–75 %", "#74c0fc"], ["pct_75_100", "75–100 %", "#2f9e44"]];
    draw("courses", {
      type: "bar",
      data: {
        labels: rows.map(function (r) { return r.foss + " (" + r.language + ")"; }),
        datasets: buckets.map(function (b) {
          return { label: b[1], data: rows.map(function (r) { return r[b[0]] || 0; }), backgroundColor: b[2],
                   maxBarThickness: 22 };
        }),
      },
      options: baseOptions({
        indexAxis: "y",
        plugins: { legend: { display: true, position: "top", align: "end", labels: { boxWidth: 12, color: NAVY } },
                   tooltip: { callbacks: { title: function (items) { return items[0].label + ": learners by course progress"; } } } },
        scales: {
          x: { stacked: true, beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } },
          y: { stacked: true, grid: { display: false }, ticks: { color: NAVY } },
        },
      }),
    }, !rows.length);
  }

  function pathSteps(rows) {
    // How many visits reach each step of the paths, with the share that left at each.
    var names = ["Entry page", "2nd page", "3rd page", "4th page"];
    var labels = rows.map(function (r) { return names[r.step - 1] || ("Step " + r.step); });
    draw("path_steps", {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "Went on", data: rows.map(function (r) { return r.visits - (r.dropped || 0); }),
            backgroundColor: PALETTE[0], borderRadius: 3, maxBarThickness: 46, stack: "s" },
          { label: "Left here", data: rows.map(function (r) { return r.dropped || 0; }),
            backgroundColor: "#ffc9c9", borderRadius: 3, maxBarThickness: 46, stack: "s" },
        ],
      },
      options: baseOptions({
        plugins: {
          legend: { display: true, position: "top", align: "end", labels: { boxWidth: 12, color: NAVY } },
          tooltip: { callbacks: { footer: function (items) {
            var r = rows[items[0].dataIndex];
            return fmt.format(r.visits) + " visits reached it" +
              (r.drop_rate == null ? "" : ", " + (100 * r.drop_rate).toFixed(1) + " % left here");
          } } },
        },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { color: NAVY } },
          y: { stacked: true, beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } },
        },
      }),
    }, !rows.some(function (r) { return r.visits; }));
  }

  function autoSubmitPathFilter() {
    ["paths-entry", "paths-event"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.addEventListener("change", function () { el.form.submit(); });
    });
  }

  // For dashboard_panels.js: one way to draw a chart and report an error.
  state.lib = { draw: draw, baseOptions: baseOptions, fail: fail, fmt: fmt, PALETTE: PALETTE, GRID: GRID,
                MUTED: MUTED };

  // ------------------------------------------------------------ start

  function start() {
    var script = document.currentScript || document.querySelector("script[data-world]");
    var worldUrl = script && script.dataset.world;
    var node = document.getElementById("eventlog-dashboard-data");
    highlightPreset();
    if (window.Chart) {
      Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      Chart.defaults.color = MUTED;
    }
    autoSubmitPathFilter();
    if (!node || !window.Chart) {
      if (node) fail("setup", "Chart.js did not load");
      state.ready = true;
      return;
    }
    var data = JSON.parse(node.textContent);
    if (!data) { state.ready = true; return; }  // the store did not answer: no figures
    var t = data.tables;
    traffic(t.traffic);
    hbar("pages", t.pages, function (r) { return r.path; }, function (r) { return r.count; }, PALETTE[0]);
    doughnut("events", t.events, function (r) { return r.event; });
    doughnut("browsers", t.browsers, function (r) { return r.browser; });
    doughnut("os", t.os, function (r) { return r.os; });
    doughnut("device_types", t.device_types, function (r) { return r.device_type; });
    pathSteps(t.path_steps || []);
    hbar("referrers", t.referrers, function (r) { return r.referrer; }, function (r) { return r.count; }, PALETTE[5]);
    hbar("exit_links", t.exit_links, function (r) { return r.url.replace(/^https?:\/\//, ""); },
         function (r) { return r.count; }, PALETTE[3]);
    draw("durations", {
      type: "bar",
      data: { labels: t.durations.map(function (r) { return r.bucket; }),
              datasets: [{ data: t.durations.map(function (r) { return r.count; }), backgroundColor: PALETTE[2],
                           borderRadius: 4 }] },
      options: baseOptions({ scales: { x: { grid: { display: false } },
                                       y: { beginAtZero: true, grid: { color: GRID }, ticks: { precision: 0 } } } }),
    }, !t.durations.some(function (r) { return r.count; }));
    hbar("tutorial_views", t.tutorial_views, function (r) { return r.tutorial + " (" + r.language + ")"; },
         function (r) { return r.views; }, PALETTE[4], 40);
    courses(t.courses);
    hbar("rewatched", t.rewatched, function (r) { return r.tutorial + " (" + r.language + ")"; },
         function (r) { return r.rewatchers; }, PALETTE[6], 24);
    var select = document.getElementById("funnel-course");
    funnel(data.funnels, 0);
    if (select) select.addEventListener("change", function () { funnel(data.funnels, Number(select.value) || 0); });
    worldMap(t.countries, worldUrl).then(function () { state.ready = true; });
  }

  function highlightPreset() {
    var here = window.location.search.replace(/^\?/, "");
    document.querySelectorAll(".presets a").forEach(function (a) {
      if (a.dataset.query === here) a.classList.add("on");
    });
  }

  try {
    start();
  } catch (err) {
    fail("start", err);
    state.ready = true;
  }
})();
