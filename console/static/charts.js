// promocodes console: time-series charts. Each <figure class="tschart">
// carries its data as JSON (every bucket of the window, zeros included) and
// a table of the same data for reading without JavaScript; this file draws
// it with uPlot (vendored: static/vendor/uplot, MIT). No CDN.
(function () {
  'use strict';
  if (typeof uPlot === 'undefined') return;

  var palette = ['#1f5fbf', '#a86400', '#2f7d32', '#b3261e', '#6b3fa0', '#00838f', '#c2185b', '#5d4037'];
  var refusalDash = [6, 4];

  function seriesOpts(s, i) {
    var color = palette[i % palette.length];
    var o = {label: s.label, stroke: color, width: 2, value: function (u, v) { return v == null ? '–' : v.toLocaleString('en-US'); }};
    if (s.kind === 'redemptions') {
      o.fill = 'rgba(31,95,191,0.12)';
    } else if (s.kind === 'rollbacks') {
      o.stroke = '#a86400';
    } else if (s.kind === 'refusals') {
      o.dash = refusalDash;
      o.width = 1.5;
    }
    return o;
  }

  function draw(fig) {
    var data = JSON.parse(fig.querySelector('script.tschart-data').textContent);
    var box = fig.querySelector('.tschart-plot');
    if (!data.x || data.x.length === 0) {
      box.textContent = 'Nothing in this window.';
      return;
    }
    var daily = data.bucket === 'day';
    var fmt = daily ? '{YYYY}-{MM}-{DD}' : '{YYYY}-{MM}-{DD} {HH}:00';
    var opts = {
      width: Math.max(320, box.clientWidth || fig.clientWidth || 720),
      height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'); },
      cursor: {focus: {prox: 16}},
      legend: {live: true},
      scales: {
        x: {time: true, range: function () { return [data.x[0], data.x[data.x.length - 1]]; }},
        y: {range: function (u, lo, hi) { return [0, Math.max(1, Math.ceil(hi * 1.1))]; }}
      },
      series: [{label: daily ? 'day (UTC)' : 'hour (UTC)', value: fmt}].concat(data.series.map(seriesOpts)),
      axes: [{values: function (u, splits) {
        return splits.map(function (v, i) {
          var iso = new Date(v * 1e3).toISOString();
          if (daily) return iso.slice(0, 10);
          var prev = i > 0 ? new Date(splits[i - 1] * 1e3).toISOString().slice(0, 10) : '';
          return (iso.slice(0, 10) !== prev ? iso.slice(5, 10) + ' ' : '') + iso.slice(11, 16);
        });
      }}, {values: function (u, vals) { return vals.map(function (v) { return Number.isInteger(v) ? v.toLocaleString('en-US') : ''; }); }}]
    };
    var plot = new uPlot(opts, [data.x].concat(data.series.map(function (s) { return s.values; })), box);
    fig.dataset.drawn = 'true';
    fig.dataset.points = String(data.x.length);
    fig.dataset.series = String(data.series.length);
    window.addEventListener('resize', function () {
      plot.setSize({width: Math.max(320, box.clientWidth || fig.clientWidth), height: 260});
    });
  }

  document.querySelectorAll('figure.tschart').forEach(draw);
})();
