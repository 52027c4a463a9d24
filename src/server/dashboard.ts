/**
 * The dashboard page served at `/`: live broadcasts with their thumbnails (refreshed every
 * `THUMBNAIL_REFRESH_MS`), an hls.js player with a rendition picker and
 * per-rung stats refreshed every second; on a clustered node also the cluster (every node with
 * its roles and ladders, where each broadcast's name, ladder and tracks run) and the cluster's
 * sources this node does not serve yet. Plain HTML + script, no build step; hls.js is served from
 * `/assets/hls.min.js` by the runtime. The player loads each broadcast's `playbackUrl` from
 * `/api/v1/broadcasts` (signed by the server when a playback secret is set; hls.js then carries the
 * token from the playlists), and reloads with a fresh one when a token is refused.
 */

/** The dashboard HTML. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lvqr-transcode</title>
<style>
  :root { color-scheme: dark; --bg:#0f1216; --panel:#171b21; --line:#2a313b; --fg:#e6e9ee; --dim:#8b95a3; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
  header { padding:12px 20px; border-bottom:1px solid var(--line); display:flex; gap:16px; align-items:baseline; }
  header h1 { font-size:16px; margin:0; }
  header span { color:var(--dim); }
  main { display:grid; grid-template-columns: 260px 1fr; gap:16px; padding:16px 20px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px; }
  h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:0 0 8px; }
  ul { list-style:none; margin:0; padding:0; }
  li button { width:100%; text-align:left; background:none; border:1px solid transparent; color:var(--fg); padding:6px 8px; border-radius:6px; cursor:pointer; }
  li button:hover, li button.active { border-color:var(--accent); }
  li small { color:var(--dim); display:block; }
  li img.thumb { display:block; width:100%; max-height:180px; object-fit:contain; background:#000; border-radius:4px; margin-bottom:4px; }
  video { width:100%; max-height:60vh; background:#000; border-radius:6px; }
  .controls { display:flex; gap:12px; align-items:center; margin:8px 0; flex-wrap:wrap; }
  select { background:var(--bg); color:var(--fg); border:1px solid var(--line); border-radius:6px; padding:4px 8px; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { text-align:right; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th:first-child, td:first-child { text-align:left; }
  .state-running { color:var(--ok); } .state-failed { color:var(--bad); } .state-skipped, .state-ended { color:var(--dim); }
  #status { color:var(--dim); }
  .empty { color:var(--dim); padding:8px; }
</style>
</head>
<body>
<header><h1>lvqr-transcode</h1><span id="backend"></span><span id="status"></span></header>
<main>
  <section>
    <h2>Live broadcasts</h2>
    <ul id="broadcasts"><li class="empty">none yet</li></ul>
  </section>
  <div>
    <section>
      <h2 id="title">Player</h2>
      <video id="video" controls muted autoplay playsinline></video>
      <div class="controls">
        <label>Rendition <select id="level"><option value="-1">auto</option></select></label>
        <span id="playing"></span>
      </div>
    </section>
    <section style="margin-top:16px">
      <h2>Ladder</h2>
      <table>
        <thead><tr><th>rung</th><th>state</th><th>size</th><th>fps</th><th>bitrate</th><th>encode fps</th><th>realtime</th><th>latency p50 / p99</th><th>dropped</th><th>restarts</th></tr></thead>
        <tbody id="rungs"><tr><td colspan="10" class="empty">no source selected</td></tr></tbody>
      </table>
      <p id="ladder-note" class="empty"></p>
    </section>
    <section id="cluster" hidden style="margin-top:16px">
      <h2>Cluster</h2>
      <table>
        <thead><tr><th>node</th><th>roles</th><th>ladders</th><th>sources / capacity</th></tr></thead>
        <tbody id="cluster-nodes"></tbody>
      </table>
      <table style="margin-top:12px">
        <thead><tr><th>broadcast</th><th>ingest</th><th>ladder</th><th>tracks</th></tr></thead>
        <tbody id="cluster-broadcasts"></tbody>
      </table>
    </section>
  </div>
</main>
<script src="/assets/hls.min.js"></script>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const levelSelect = $('level');
  let hls = null;
  let current = null;
  const fmtKbps = (bps) => (bps == null ? '-' : (bps / 1000).toFixed(0) + ' kb/s');
  const fmt = (n, d = 0) => (n == null ? '-' : Number(n).toFixed(d));

  let playTimer = null;
  /** Whether the broadcast's main playlist lists a complete segment (hls.js fails on parts alone). */
  const hasSegment = (b) => {
    const tracks = b.tracks || [];
    const main = tracks.find((t) => t.kind === 'video') || tracks[0];
    return main === undefined || main.segments === undefined || main.segments > 0;
  };

  function play(name) {
    current = name;
    clearTimeout(playTimer);
    $('title').textContent = 'Player - ' + name;
    const entry = lastBroadcasts.find((b) => b.name === name);
    if (entry && !hasSegment(entry)) {
      // A player given a playlist with parts but no segment stops with levelEmptyError: wait.
      $('status').textContent = 'waiting for the first segment';
      playTimer = setTimeout(() => current === name && play(name), 500);
      return;
    }
    const src = (entry && entry.playbackUrl) || '/hls/' + name + '/master.m3u8';
    if (hls) { hls.destroy(); hls = null; }
    levelSelect.innerHTML = '<option value="-1">auto</option>';
    if (window.Hls && Hls.isSupported()) {
      // hls.js's own low-latency target (the playlist's PART-HOLD-BACK), and catching up at up to
      // 1.5x speed when the player fell behind it (a slow start, a stall).
      hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
      window.__hls = hls;
      hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
        levelSelect.innerHTML = '<option value="-1">auto</option>' + data.levels
          .map((l, i) => '<option value="' + i + '">' + (l.height ? l.height + 'p' : 'level ' + i) + ' ' + fmtKbps(l.bitrate) + (l.audioCodec === 'opus' ? ' opus' : '') + '</option>')
          .join('');
        video.play().catch(() => {});
      });
      // hls.js plays faster only while within one target duration of its target latency: a player
      // further behind (a long stall, a paused or hidden tab) would stay there. Jump back instead.
      hls.on(Hls.Events.LEVEL_UPDATED, (_e, data) => {
        const sync = hls.liveSyncPosition;
        if (!data.details.live || video.paused || video.seeking || sync == null) return;
        const behind = hls.latency - (hls.targetLatency || 0);
        if (behind > data.details.targetduration && sync > video.currentTime) {
          console.warn('hls.js ' + behind.toFixed(1) + ' s behind its target latency: back to the live edge');
          video.currentTime = sync;
        }
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
        const l = hls.levels[data.level];
        $('playing').textContent = l ? 'playing ' + l.width + 'x' + l.height : '';
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        // Every player error in the browser console, so a stall can be explained from there.
        const url = (data.frag && data.frag.url) || (data.context && data.context.url) || '';
        console.warn('hls.js ' + (data.fatal ? 'fatal ' : '') + data.type + ' ' + data.details + ' ' + url);
        if (data.fatal) {
          $('status').textContent = 'player error: ' + data.details;
          window.__hlsFatal = data.details;
          const code = data.response && data.response.code;
          if (code === 401 || code === 403) setTimeout(() => current && play(current), 1000);
          else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls && hls.startLoad(), 1000);
          else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        }
      });
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = src;
    }
    renderList(lastBroadcasts);
  }

  levelSelect.addEventListener('change', () => {
    if (!hls) return;
    // A smooth switch (at the next fragment boundary, nothing flushed). The immediate one
    // (hls.currentLevel) flushes the buffer, and hls.js 1.7 then still counts the parts it had
    // loaded of that level before as loaded: going back to a level within a segment it starts at a
    // part that is not INDEPENDENT, and chromium stalled with media buffered ahead (about one
    // switch in twelve).
    hls.nextLevel = Number(levelSelect.value);
  });

  // One <img> per broadcast, kept across list renders; its URL changes every few seconds.
  const THUMBNAIL_REFRESH_MS = 5000;
  const thumbs = new Map();
  // The token query of a broadcast's signed playback URL (empty when playback is open).
  function tokenQuery(playbackUrl) {
    const at = (playbackUrl || '').indexOf('?');
    return at === -1 ? '' : '&' + playbackUrl.slice(at + 1);
  }
  function thumbnail(name, playbackUrl) {
    let img = thumbs.get(name);
    if (!img) {
      img = document.createElement('img');
      img.className = 'thumb';
      img.alt = name;
      img.dataset.name = name;
      img.onerror = () => { img.style.visibility = 'hidden'; };
      img.onload = () => { img.style.visibility = ''; };
      thumbs.set(name, img);
    }
    const bucket = Math.floor(Date.now() / THUMBNAIL_REFRESH_MS);
    if (img.dataset.bucket !== String(bucket)) {
      img.dataset.bucket = String(bucket);
      img.src = '/hls/' + name.split('/').map(encodeURIComponent).join('/') + '/thumbnail.jpg?width=240&t=' + bucket + tokenQuery(playbackUrl);
    }
    return img;
  }

  const esc = (text) => String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  // A clustered node: every node with its roles and ladders, and where each broadcast runs.
  function renderCluster(c) {
    $('cluster').hidden = !c;
    if (!c) return;
    $('cluster-nodes').innerHTML = (c.nodes || []).map((n) => '<tr data-node="' + esc(n.id) + '"><td>' + esc(n.id) + '</td><td>' + esc((n.roles || []).join(', ')) + '</td><td>' + esc((n.ladders || []).join(', ') || '-') + '</td><td>' + (n.maxSources == null ? '-' : (n.ladders || []).length + ' / ' + n.maxSources) + '</td></tr>').join('') || '<tr><td colspan="4" class="empty">no nodes</td></tr>';
    $('cluster-broadcasts').innerHTML = (c.broadcasts || []).map((b) => '<tr data-broadcast="' + esc(b.broadcast) + '"><td>' + esc(b.broadcast) + '</td><td>' + esc(b.ingestNode || '-') + '</td><td>' + esc(b.ladderNode || '-') + '</td><td>' + esc((b.tracks || []).map((t) => t.track + ' @ ' + t.node).join(', ')) + '</td></tr>').join('') || '<tr><td colspan="4" class="empty">no broadcasts</td></tr>';
  }
  // The sources of the cluster this node does not serve yet (an edge mirrors one once it is played).
  function withCluster(list, c) {
    if (!c) return list;
    const remote = (c.broadcasts || [])
      .filter((b) => b.ingestNode && !list.some((x) => x.name === b.broadcast))
      .map((b) => ({ name: b.broadcast, origin: 'ingest', ended: false, tracks: [] }));
    return [...list, ...remote];
  }

  let lastBroadcasts = [];
  function renderList(list) {
    const ul = $('broadcasts');
    const sources = list.filter((b) => b.origin !== 'rendition');
    if (sources.length === 0) { ul.innerHTML = '<li class="empty">none yet</li>'; return; }
    ul.innerHTML = '';
    for (const name of [...thumbs.keys()]) if (!sources.some((b) => b.name === name)) thumbs.delete(name);
    for (const b of sources) {
      const v = (b.tracks || []).find((t) => t.track === '0.mp4') || {};
      const li = document.createElement('li');
      const btn = document.createElement('button');
      btn.className = b.name === current ? 'active' : '';
      btn.dataset.name = b.name;
      btn.innerHTML = b.name + '<small>' + (v.width ? v.width + 'x' + v.height + ' ' : '') + (v.codec || '') + ' ' + fmtKbps(v.bitrateBps) + (b.ended ? ' (ended)' : '') + '</small>';
      btn.onclick = () => play(b.name);
      if (!b.ended) btn.prepend(thumbnail(b.name, b.playbackUrl));
      li.appendChild(btn);
      ul.appendChild(li);
    }
  }

  async function refresh() {
    try {
      const [b, t] = await Promise.all([fetch('/api/v1/broadcasts').then((r) => r.json()), fetch('/api/v1/transcode').then((r) => r.json())]);
      lastBroadcasts = withCluster(b.broadcasts || [], b.cluster);
      renderList(lastBroadcasts);
      renderCluster(b.cluster);
      if (!current) {
        const first = lastBroadcasts.find((x) => x.origin !== 'rendition' && !x.ended);
        if (first) play(first.name);
      }
      $('backend').textContent = 'encoder: ' + (t.backend || '?') + ' (' + (t.encoderPolicy || 'software') + ')';
      const src = (t.sources || []).find((s) => s.broadcast === current);
      const body = $('rungs');
      if (!src) { body.innerHTML = '<tr><td colspan="10" class="empty">no ladder for this source</td></tr>'; $('ladder-note').textContent = ''; }
      else {
        // Video rungs, then the audio ladder's renditions of this source (codec in the size column).
        const audio = ((t.audio && t.audio.renditions) || []).filter((r) => r.broadcast === current);
        body.innerHTML = (src.rungs || []).map((r) => '<tr><td>' + r.rendition + '</td><td class="state-' + r.state + '">' + r.state + '</td><td>' + (r.width ? r.width + 'x' + r.height : '-') + '</td><td>' + fmt(r.frameRate, 2) + '</td><td>' + fmtKbps(r.outputBitrateBps) + '</td><td>' + fmt(r.encodeFps, 1) + '</td><td>' + fmt(r.realtimeFactor, 2) + '</td><td>' + fmt(r.latencyMsP50) + ' / ' + fmt(r.latencyMsP99) + ' ms</td><td>' + (r.droppedFrames ?? 0) + '</td><td>' + (r.restarts ?? 0) + '</td></tr>').join('')
          + audio.map((r) => '<tr><td>' + r.rendition + '</td><td class="state-' + r.state + '">' + r.state + '</td><td>' + r.codec + '</td><td>-</td><td>' + fmtKbps(r.outputBitrateBps) + '</td><td>-</td><td>-</td><td>-</td><td>' + (r.droppedFrames ?? 0) + '</td><td>' + (r.restarts ?? 0) + '</td></tr>').join('');
        const skipped = (src.skipped || []).map((s) => s.rendition + ': ' + s.reason).join('; ');
        $('ladder-note').textContent = (src.reason ? src.reason + ' ' : '') + (skipped ? 'skipped ' + skipped : '');
      }
      $('status').textContent = '';
    } catch (e) {
      $('status').textContent = 'server unreachable';
    }
  }
  refresh();
  setInterval(refresh, 1000);
})();
</script>
</body>
</html>
`;
