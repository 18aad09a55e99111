// promocodes console: live progress and the live format preview. The pages
// work without this file (reload for progress, the Preview button for the
// preview); it only refreshes parts of them. No framework, no CDN.
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  var page = document.body.dataset.page;

  function every(ms, fn) { fn(); return setInterval(fn, ms); }

  // Promotions list: re-render the rows every 2 s.
  var table = document.getElementById('promotions');
  if (page === 'list' && table) {
    setInterval(function () {
      fetch(table.dataset.live, {credentials: 'same-origin'}).then(function (r) {
        if (r.ok) return r.text();
        throw new Error(r.status);
      }).then(function (html) {
        document.getElementById('rows').innerHTML = html;
      }).catch(function () {});
    }, 2000);
  }

  // A promotion: follow its progress (generation, then a deletion) until it
  // settles; actions that no longer apply are hidden.
  var summary = document.getElementById('summary');
  var settled = function (st) { return st === 'completed' || st === 'cancelled' || st === 'deleted'; };
  if (page === 'promotion' && summary && !settled(summary.dataset.status)) {
    var timer = setInterval(function () {
      fetch(summary.dataset.live, {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (p) {
        var bar = summary.querySelector('progress');
        bar.max = p.codeCount; bar.value = p.generatedCount; bar.textContent = p.percent + '%';
        document.getElementById('pct').textContent = p.percent + '%';
        document.getElementById('generated').textContent = p.generatedCount.toLocaleString('en-US');
        document.getElementById('summary-text').textContent = p.summary;
        var b = p.batches;
        document.getElementById('batches').textContent = b.completed + ' of ' + b.total + ' complete, ' +
          b.retrying + ' retrying, ' + b.parked + ' parked';
        var left = document.getElementById('deletion-left');
        if (left && p.deletion) left.textContent = p.deletion.codesLeft.toLocaleString('en-US');
        var was = summary.dataset.status;
        summary.dataset.status = p.status;
        var st = document.querySelector('h1 .st');
        if (st) { st.textContent = p.status; st.className = 'st st-' + p.status; }
        document.querySelectorAll('[data-while]').forEach(function (el) {
          el.hidden = el.dataset.while.split(' ').indexOf(p.status) < 0;
        });
        if (settled(p.status)) {
          clearInterval(timer);
          // A deletion that finished while the page was open: show the final state.
          if (p.status === 'deleted' && was !== 'deleted') location.reload();
        }
      }).catch(function () {});
    }, 1000);
  }

  // New promotion: the preview follows the form.
  var form = document.getElementById('newform');
  if (page === 'new' && form) {
    var pending = null, seq = 0;
    var update = function () {
      var mine = ++seq;
      var q = new URLSearchParams(new FormData(form));
      q.delete('csrf');
      fetch('/console/preview?' + q.toString(), {credentials: 'same-origin'}).then(function (r) { return r.text(); })
        .then(function (html) { if (mine === seq) document.getElementById('preview').innerHTML = html; })
        .catch(function () {});
    };
    var later = function () { clearTimeout(pending); pending = setTimeout(update, 150); };
    form.addEventListener('input', later);
    form.addEventListener('change', later);
  }
})();
