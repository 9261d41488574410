// georaft console: keeps the server-rendered page live. The server sends, over one
// server-sent event stream, the countdowns a few times a second ("leases") and, once a
// second, the page's fragments that changed, rendered by the server ("view"). This script
// swaps them in (keeping keyboard focus and open details where they were) and runs the
// countdowns between messages. Plain JavaScript, no library, nothing fetched from elsewhere.
(function () {
  'use strict';

  // Leases by key ("3:lease"): state, remaining and total ms, and when that was received.
  var leases = {};

  function now() { return performance.now(); }

  function noteLease(key, state, remaining, total, running) {
    leases[key] = { state: state, remaining: remaining, total: total, running: running, at: now() };
  }

  // The countdowns the page was rendered with, so they move before the first message.
  function readCountdowns(root) {
    root.querySelectorAll('[data-lease]').forEach(function (el) {
      var key = el.getAttribute('data-lease');
      if (leases[key]) { return; }
      noteLease(key, el.getAttribute('data-state'), parseFloat(el.getAttribute('data-remaining')) || 0,
        parseFloat(el.getAttribute('data-total')) || 0, el.getAttribute('data-running') === 'true');
    });
  }

  function fmtMs(ms) {
    if (ms < 10) { return ms.toFixed(2) + ' ms'; }
    if (ms < 100) { return ms.toFixed(1) + ' ms'; }
    return Math.round(ms) + ' ms';
  }

  // A running lease counts down from its last reading; a leader renews its lease with every
  // heartbeat a quorum answers, so the next reading jumps back up. Reaching zero here means
  // no newer reading came, not that the lease was lost: the state says that.
  function tick() {
    var t = now();
    document.querySelectorAll('[data-lease]').forEach(function (el) {
      var l = leases[el.getAttribute('data-lease')];
      if (!l) { return; }
      var left = l.running ? Math.max(0, l.remaining - (t - l.at)) : 0;
      if (el.tagName.toLowerCase() === 'circle') {
        var pct = l.running && l.total > 0 ? Math.min(100, 100 * left / l.total) : 0;
        el.setAttribute('stroke-dasharray', pct.toFixed(1) + ' 100');
        el.setAttribute('data-running', l.running ? 'true' : 'false');
      } else {
        el.textContent = l.running ? fmtMs(left) : l.state;
      }
    });
    window.requestAnimationFrame(tick);
  }

  // swap replaces a fragment, unless it is what was sent last time.
  var lastHTML = {};
  function swap(id, html) {
    var el = document.getElementById(id);
    if (!el || lastHTML[id] === html) { return; }
    lastHTML[id] = html;
    var active = document.activeElement;
    var activeID = active && el.contains(active) ? active.id : '';
    var open = [];
    el.querySelectorAll('details[open]').forEach(function (d) { if (d.id) { open.push(d.id); } });
    // A choice the user made in a form stays made.
    var values = {};
    el.querySelectorAll('select[id], input[id]').forEach(function (f) { values[f.id] = f.value; });
    // Under an SVG element (the map's overlay), innerHTML parses in the SVG namespace.
    el.innerHTML = html;
    open.forEach(function (d) { var x = document.getElementById(d); if (x) { x.open = true; } });
    Object.keys(values).forEach(function (id) {
      var f = document.getElementById(id);
      if (!f) { return; }
      if (f.tagName.toLowerCase() === 'select') {
        var opt = f.querySelector('option[value="' + CSS.escape(values[id]) + '"]');
        if (opt && !opt.disabled) { f.value = values[id]; }
      } else if (f.type !== 'hidden') {
        f.value = values[id];
      }
    });
    if (activeID) {
      var again = document.getElementById(activeID);
      if (again) { again.focus({ preventScroll: true }); }
    }
    applyFilters();
  }

  var live = document.getElementById('live');
  var updatedAt = 0;
  function setLive(state, text) {
    if (!live) { return; }
    live.setAttribute('data-state', state);
    live.querySelector('.live-text').textContent = text;
  }
  setInterval(function () {
    if (updatedAt && live && live.getAttribute('data-state') === 'live') {
      var s = (Date.now() - updatedAt) / 1000;
      live.querySelector('.live-text').textContent = 'live · view updated ' + (s < 1 ? 'just now' : s.toFixed(0) + ' s ago');
    }
  }, 1000);

  // Event filters: shown only with this script, since they work here.
  var filters = document.querySelector('.filters');
  function applyFilters() {
    var list = document.getElementById('event-list');
    if (!list || !filters) { return; }
    filters.querySelectorAll('input[data-cat]').forEach(function (box) {
      list.classList.toggle('hide-' + box.getAttribute('data-cat'), !box.checked);
    });
  }
  if (filters) {
    filters.hidden = false;
    filters.addEventListener('change', applyFilters);
  }

  // A node on the map leads to its row in the nodes table.
  function toRow(node) {
    var row = document.getElementById('node-row-' + node.getAttribute('data-node'));
    if (row) {
      row.scrollIntoView({ block: 'center' });
      row.focus({ preventScroll: true });
    }
  }
  var overlay = document.getElementById('map-overlay');
  if (overlay) {
    overlay.addEventListener('click', function (e) {
      var node = e.target.closest('.node');
      if (node) { toRow(node); }
    });
    overlay.addEventListener('keydown', function (e) {
      var node = e.target.closest('.node');
      if (node && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        toRow(node);
      }
    });
  }

  var announcer = document.getElementById('announce');

  function connect() {
    if (!window.EventSource) { return; }
    // The page says which rendering it shows, so the stream sends only what changed since.
    var es = new EventSource('/ui/stream?seq=' + encodeURIComponent(document.body.getAttribute('data-seq') || ''));
    es.onopen = function () { setLive('live', 'live'); };
    es.onerror = function () { setLive('lost', 'connection to the console lost; retrying…'); };
    es.addEventListener('leases', function (e) {
      var data = JSON.parse(e.data);
      Object.keys(data).forEach(function (key) {
        var l = data[key];
        noteLease(key, l.state, l.remaining_ms, l.total_ms, l.running);
      });
    });
    es.addEventListener('view', function (e) {
      var msg = JSON.parse(e.data);
      Object.keys(msg.fragments).forEach(function (id) { swap(id, msg.fragments[id]); });
      readCountdowns(document);
      updatedAt = Date.now();
      setLive('live', 'live · view updated just now');
      if (msg.announce && announcer) { announcer.textContent = msg.announce; }
    });
  }

  readCountdowns(document);
  applyFilters();
  window.requestAnimationFrame(tick);
  connect();
})();
