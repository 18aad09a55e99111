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

  // A promotion: its live parts (status, deletion, summary with the bar and
  // the export button, the incomplete batches) are rendered again by the
  // server, together, and swapped in by id: every second until it settles,
  // then every 5 s (a top-up, a replay or a deletion from elsewhere shows
  // too). Actions that no longer apply are hidden.
  var live = document.getElementById('live');
  var settled = function (st) { return st === 'completed' || st === 'cancelled' || st === 'deleted' || st === 'failed'; };
  if (page === 'promotion' && live) {
    var refresh = function () {
      if (document.hidden) { setTimeout(refresh, 1000); return; }
      fetch(live.dataset.live, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
        if (r.ok) return r.text();
        throw new Error(r.status);
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        doc.querySelectorAll('[data-part]').forEach(function (part) {
          var old = document.getElementById(part.id);
          if (old) old.replaceWith(document.importNode(part, true));
        });
      }).catch(function () {}).then(function () {
        var summary = document.getElementById('summary');
        var st = summary ? summary.dataset.status : '';
        document.querySelectorAll('[data-while]').forEach(function (el) {
          el.hidden = el.dataset.while.split(' ').indexOf(st) < 0;
        });
        setTimeout(refresh, settled(st) ? 5000 : 1000);
      });
    };
    var first = document.getElementById('summary');
    setTimeout(refresh, first && settled(first.dataset.status) ? 5000 : 1000);
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
