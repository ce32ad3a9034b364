// The samprompt annotation canvas: runs as the js_on_load of a gr.HTML component.
// Gradio gives `element` (the component's root), `props` (props.value: the view document from
// samprompt/annotate/canvas.py), `watch` and `trigger`. The browser sends commands with
// trigger('submit', {cmds}) one batch at a time, in order; the reply is a new props.value whose
// `ack` says which commands it has applied. The image is drawn once; replies carry only the mask
// overlay (a PNG) and vectors, so the picture never blanks while a click is computed.
(function () {
  const TOOLS = [
    ["point", "+ point", "1"], ["negative", "− point", "2"], ["box", "box", "3"],
    ["brush", "brush", "4"], ["eraser", "eraser", "5"], ["polygon", "vertices", "6"],
  ];
  const HINTS = {
    point: "click: positive point · right-click: negative · shift-click: select an object",
    negative: "click: negative point · shift-click: select an object",
    box: "drag a box (or click two corners)",
    brush: "drag to paint on the selected object · [ ] size",
    eraser: "drag to erase from the selected object · [ ] size",
    polygon: "drag a vertex · double-click a vertex to remove it, an edge to add one · click elsewhere to draw " +
    "a new object, vertex by vertex (Enter or a click on the first vertex closes it)",
  };
  element.innerHTML = `
    <div class="sp-root">
      <div class="sp-side"><div class="sp-files-title">files</div><div class="sp-files"></div></div>
      <div class="sp-main">
        <div class="sp-toolbar"></div>
        <div class="sp-stage" tabindex="0"><canvas></canvas><div class="sp-empty">upload an image or open a folder</div>
          <div class="sp-away" hidden></div><div class="sp-notice" hidden title="click to close"></div>
          <div class="sp-orient" hidden><b class="sp-o-l"></b><b class="sp-o-r"></b><b class="sp-o-t"></b><b class="sp-o-b"></b></div>
          <div class="sp-help" hidden><b>keys</b> (press ? again or Esc to close)<br>
            1 + point · 2 − point · 3 box · 4 brush · 5 eraser · 6 vertices · [ ] brush size<br>
            n new object · z / ctrl-z undo (also takes back a done) · y / ctrl-y redo · Delete or Backspace delete the object<br>
            h hide / show the object · l lock / unlock it · o masks off / on (the slider sets their opacity)<br>
            s segment everything · a accept · d discard the highlighted proposal<br>
            Enter done (then the next unfinished file) · ← → previous / next file · ↑ ↓ slices · e export<br>
            shift-click select · wheel zoom · space-, alt- or middle-drag pan · f fit · Esc cancel</div></div>
        <div class="sp-volume" hidden>
          <label><span class="sp-unit">slice</span> <input class="sp-slice" type="range" min="0" max="0" value="0" step="1"></label>
          <span class="sp-slice-no"></span>
          <select class="sp-plane"></select>
          <select class="sp-window"></select>
          <select class="sp-convention" title="radiological: the patient's right on the screen's left; neurological: on the right">
            <option value="radiological">radiological</option><option value="neurological">neurological</option></select>
          <button class="sp-propagate" type="button">propagate ▲▼</button>
        </div>
        <div class="sp-legend"></div>
      </div>
    </div>`;
  const $ = (sel) => element.querySelector(sel);
  const stage = $(".sp-stage"), cv = $("canvas"), ctx = cv.getContext("2d");
  const st = {
    tool: "point", doc: null, img: null, overlay: null, key: null, scale: 1, ox: 0, oy: 0,
    drag: null, boxStart: null, stroke: null, mouse: null, brush: 6, vertex: null, panning: null,
    space: false, filesSig: "", legendSig: "", volSig: "", opacity: 1, masksOff: false, draft: null,
    convention: "radiological",
    ghosts: [], // points and boxes sent and not yet answered: drawn at once, as placed
  };
  const api = window.samprompt = window.samprompt || {};
  api.drawn = api.drawn || { seq: -1, ack: 0, t: 0 };

  // ------------------------------------------------------------------ toolbar
  const bar = $(".sp-toolbar");
  for (const [id, text, key] of TOOLS) {
    const b = document.createElement("button");
    b.type = "button"; b.dataset.tool = id; b.textContent = `${text} (${key})`;
    b.addEventListener("click", () => setTool(id));
    bar.appendChild(b);
  }
  const fit = document.createElement("button");
  fit.type = "button"; fit.textContent = "fit (f)"; fit.addEventListener("click", () => { fitView(); draw(); });
  bar.appendChild(fit);
  const opacity = document.createElement("label");
  opacity.className = "sp-opacity"; opacity.title = "mask opacity (o: masks off / on)";
  opacity.innerHTML = 'masks <input type="range" min="0" max="100" value="100" step="5">';
  const opacityIn = opacity.querySelector("input");
  opacityIn.addEventListener("input", () => { st.opacity = opacityIn.value / 100; st.masksOff = false; draw(); });
  opacityIn.addEventListener("change", (e) => { e.target.blur(); stage.focus({ preventScroll: true }); });
  bar.appendChild(opacity);
  const info = document.createElement("span");
  info.className = "sp-hint"; bar.appendChild(info);
  function setTool(id) {
    st.tool = id; st.boxStart = null; st.stroke = null; st.vertex = null; st.draft = null;
    bar.querySelectorAll("button[data-tool]").forEach((b) => b.classList.toggle("sp-on", b.dataset.tool === id));
    info.textContent = HINTS[id] + (id === "brush" || id === "eraser" ? ` · radius ${st.brush.toFixed(1)} px` : "");
    stage.style.cursor = id === "brush" || id === "eraser" ? "none" : "crosshair";
    draw();
  }

  // ---------------------------------------------------------- the command queue
  let counter = 0, pending = [], inflight = null;
  function send(cmd) {
    cmd.n = ++counter;
    if (cmd.op === "point" || cmd.op === "box") { st.ghosts.push(cmd); draw(); }
    if (cmd.op === "slice") pending = pending.filter((c) => c.op !== "slice"); // only the latest slice matters
    pending.push(cmd);
    pump();
    return cmd.n;
  }
  // Edits not yet answered also live in the tab's sessionStorage: when the page is rebuilt (a server
  // restart makes Gradio mount the app again) or reloaded, they are sent again on the file they were made on.
  const STORE = "samprompt-unsent";
  function remember() {
    const cmds = (inflight ? inflight.cmds : []).concat(pending).filter((c) => c.op !== "refresh");
    try {
      if (cmds.length && st.doc && st.doc.file) sessionStorage.setItem(STORE, JSON.stringify({ file: st.doc.file, cmds }));
      else sessionStorage.removeItem(STORE);
    } catch (e) { /* storage off: the banner still says what waits */ }
  }
  let unsent = null;
  try { unsent = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (e) { unsent = null; }
  function resendUnsent(doc) { // once the file they were made on is shown again
    if (!unsent || !doc.key || doc.file !== unsent.file) return;
    const cmds = unsent.cmds; unsent = null;
    for (const c of cmds) { const copy = Object.assign({}, c); delete copy.n; send(copy); }
  }
  function pump() {
    remember();
    if (inflight || !pending.length) return;
    const cmds = pending; pending = [];
    inflight = { n: cmds[cmds.length - 1].n, t: performance.now(), sent: performance.now(), cmds };
    trigger("submit", { cmds, file: st.doc ? st.doc.file : null, index: st.doc ? st.doc.index : null });
  }
  // The server away (stopped, restarting, the network gone): say so on the canvas, keep the edits drawn
  // and send them again until it answers; a restarted server reopens the file they were made on.
  const away = $(".sp-away");
  const watchdog = setInterval(() => {
    if (!element.isConnected) { clearInterval(watchdog); return; } // a canvas the page rebuilt: the new one resends
    if (!inflight) { away.hidden = true; return; }
    const now = performance.now(), waited = now - inflight.t;
    if (waited < 5000) return;
    const n = inflight.cmds.length + pending.length;
    away.textContent = `⚠ the server is not answering: ${n} edit(s) waiting, not saved yet; they are sent again until it is back`;
    away.hidden = false;
    if (now - inflight.sent > 4000) { // resend the batch, with what came since, as one
      const cmds = inflight.cmds.concat(pending); pending = [];
      inflight = { n: cmds[cmds.length - 1].n, t: inflight.t, sent: now, cmds };
      trigger("submit", { cmds, file: st.doc ? st.doc.file : null, index: st.doc ? st.doc.index : null });
    }
  }, 1000);
  api.send = send;
  api.pending = () => pending.length + (inflight ? 1 : 0);

  // ------------------------------------------------------- coordinates and view
  // A volume's slices are shown anterior or superior up (flip_y); radiological convention also mirrors the
  // patient's left-right axis (flip_x), so the patient's right is on the screen's left.
  const flip = () => !!(st.doc && st.doc.flip_y);
  const flipX = () => !!(st.doc && st.doc.volume && st.doc.volume.lr && st.convention === "radiological");
  function toImage(mx, my) {
    const x = (mx - st.ox) / st.scale, y = (my - st.oy) / st.scale;
    return [flipX() ? st.doc.w - x : x, flip() ? st.doc.h - y : y];
  }
  function toScreen(x, y) {
    return [st.ox + (flipX() ? st.doc.w - x : x) * st.scale, st.oy + (flip() ? st.doc.h - y : y) * st.scale];
  }
  api.screenOf = (x, y) => { // page coordinates of image point (x, y), for tests and scripts
    const r = cv.getBoundingClientRect(), [sx, sy] = toScreen(x, y);
    return { x: r.left + sx * r.width / cv.width, y: r.top + sy * r.height / cv.height };
  };
  api.doc = () => st.doc;
  api.view = () => ({ scale: st.scale, ox: st.ox, oy: st.oy, tool: st.tool, key: st.key });
  api.setTool = setTool;
  function resize() {
    const r = stage.getBoundingClientRect();
    const w = Math.max(200, Math.round(r.width)), h = Math.max(200, Math.round(r.height));
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; return true; }
    return false;
  }
  function fitView() {
    if (!st.doc || !st.doc.w) return;
    resize();
    // small images are scaled up too; a margin all round, so that a drag can start beside the image
    const pad = Math.max(8, Math.round(0.02 * Math.min(cv.width, cv.height)));
    const s = Math.min((cv.width - 2 * pad) / st.doc.w, (cv.height - 2 * pad) / st.doc.h);
    st.scale = s; st.ox = (cv.width - st.doc.w * s) / 2; st.oy = (cv.height - st.doc.h * s) / 2;
  }
  new ResizeObserver(() => { if (resize()) { fitView(); draw(); } }).observe(stage);

  // -------------------------------------------------------------------- drawing
  function draw() {
    resize();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#1e1e24"; ctx.fillRect(0, 0, cv.width, cv.height);
    $(".sp-empty").hidden = !!st.img;
    if (!st.img || !st.doc) return;
    const s = st.scale;
    ctx.setTransform(flipX() ? -s : s, 0, 0, flip() ? -s : s, flipX() ? st.ox + st.doc.w * s : st.ox,
      flip() ? st.oy + st.doc.h * s : st.oy);
    ctx.imageSmoothingEnabled = s < 2;
    ctx.drawImage(st.img, 0, 0, st.doc.w, st.doc.h); // a large image comes as a smaller copy: drawn to its size
    if (st.overlay && !st.masksOff && st.opacity > 0) {
      ctx.globalAlpha = st.opacity; ctx.drawImage(st.overlay, 0, 0, st.doc.w, st.doc.h); ctx.globalAlpha = 1;
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const doc = st.doc;
    for (const o of doc.objects || []) {
      if (o.hidden) continue;
      const cur = o.i === doc.current;
      if (o.box) {
        const [a, b] = toScreen(o.box[0], o.box[1]), [c, d] = toScreen(o.box[2], o.box[3]);
        ctx.setLineDash(cur ? [] : [4, 3]); ctx.lineWidth = cur ? 2 : 1; ctx.strokeStyle = o.colour;
        ctx.strokeRect(Math.min(a, c), Math.min(b, d), Math.abs(c - a), Math.abs(d - b));
        ctx.setLineDash([]);
      }
      o.points.forEach((p, k) => {
        const [x, y] = toScreen(p[0], p[1]);
        ctx.beginPath(); ctx.arc(x, y, cur ? 6 : 4, 0, 2 * Math.PI);
        ctx.fillStyle = o.labels[k] ? "#22c55e" : "#ef4444"; ctx.fill();
        ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
      });
    }
    if (doc.proposal_box) { // the proposal under review, boxed so that even a thin one is seen
      const b = doc.proposal_box, [a, c] = toScreen(b[0], b[1]), [e, f] = toScreen(b[2], b[3]);
      const x = Math.min(a, e) - 4, y = Math.min(c, f) - 4, w = Math.abs(e - a) + 8, h = Math.abs(f - c) + 8;
      ctx.setLineDash([6, 4]); ctx.lineWidth = 3; ctx.strokeStyle = "rgba(0,0,0,0.6)"; ctx.strokeRect(x, y, w, h);
      ctx.lineWidth = 1.5; ctx.strokeStyle = "#ffffff"; ctx.strokeRect(x, y, w, h); ctx.setLineDash([]);
    }
    for (const g of st.ghosts) {
      if (g.op === "point") {
        const [x, y] = toScreen(g.x, g.y);
        ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI);
        ctx.fillStyle = g.positive === false ? "#ef4444" : "#22c55e"; ctx.fill();
        ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
      } else {
        const [a, b] = toScreen(g.box[0], g.box[1]), [c, d] = toScreen(g.box[2], g.box[3]);
        ctx.lineWidth = 2; ctx.strokeStyle = "#38bdf8";
        ctx.strokeRect(Math.min(a, c), Math.min(b, d), Math.abs(c - a), Math.abs(d - b));
      }
    }
    const editing = st.tool === "polygon";
    for (const ring of doc.polygons || []) { // the selected object's outline, crisp at any zoom
      ctx.beginPath();
      ring.forEach((p, k) => { const [x, y] = toScreen(p[0], p[1]); k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      ctx.closePath(); ctx.lineWidth = editing ? 1.5 : 2; ctx.strokeStyle = editing ? "#facc15" : "#ffffff"; ctx.stroke();
      if (editing) for (const p of ring) { const [x, y] = toScreen(p[0], p[1]); ctx.fillStyle = "#facc15"; ctx.fillRect(x - 4, y - 4, 8, 8); }
    }
    if (st.draft && st.draft.length) { // a polygon being drawn: its vertices, and the edge to the cursor
      ctx.beginPath();
      st.draft.forEach((p, k) => { const [x, y] = toScreen(p[0], p[1]); k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      if (st.mouse) { const [x, y] = toScreen(st.mouse[0], st.mouse[1]); ctx.lineTo(x, y); }
      ctx.setLineDash([5, 3]); ctx.lineWidth = 2; ctx.strokeStyle = "#38bdf8"; ctx.stroke(); ctx.setLineDash([]);
      st.draft.forEach((p, k) => {
        const [x, y] = toScreen(p[0], p[1]);
        ctx.fillStyle = k ? "#38bdf8" : "#f0f9ff"; ctx.fillRect(x - 4, y - 4, 8, 8);
      });
    }
    const corner = st.drag && st.drag.kind === "box" ? st.drag.from : st.boxStart;
    if (corner) { // the first corner is shown at once, the rubber band while dragging
      const [x, y] = toScreen(corner[0], corner[1]);
      ctx.fillStyle = "#38bdf8"; ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.fill();
      if (st.mouse) {
        const [u, v] = toScreen(st.mouse[0], st.mouse[1]);
        ctx.setLineDash([6, 4]); ctx.lineWidth = 2; ctx.strokeStyle = "#38bdf8";
        ctx.strokeRect(Math.min(x, u), Math.min(y, v), Math.abs(u - x), Math.abs(v - y)); ctx.setLineDash([]);
      }
    }
    if (st.stroke && st.stroke.points.length) {
      ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.lineWidth = 2 * st.brush * s;
      ctx.strokeStyle = st.stroke.erase ? "rgba(239,68,68,0.55)" : "rgba(250,204,21,0.55)";
      ctx.beginPath();
      st.stroke.points.forEach((p, k) => { const [x, y] = toScreen(p[0], p[1]); k ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
      if (st.stroke.points.length === 1) { const [x, y] = toScreen(...st.stroke.points[0]); ctx.lineTo(x + 0.01, y); }
      ctx.stroke();
    }
    if ((st.tool === "brush" || st.tool === "eraser") && st.mouse) {
      const [x, y] = toScreen(st.mouse[0], st.mouse[1]);
      ctx.beginPath(); ctx.arc(x, y, Math.max(2, st.brush * s), 0, 2 * Math.PI);
      ctx.lineWidth = 1.5; ctx.strokeStyle = st.tool === "eraser" ? "#ef4444" : "#facc15"; ctx.stroke();
    }
  }

  // --------------------------------------------------------------- replies
  let latest = -1;
  function loadImage(url) {
    return new Promise((ok, bad) => { const im = new Image(); im.onload = () => ok(im); im.onerror = bad; im.src = url; });
  }
  const layer = document.createElement("canvas"); // the masks, painted from the reply's runs
  const lctx = layer.getContext("2d");
  function paintMasks(doc) {
    const m = doc.masks;
    if (!m || !doc.w) return null;
    const w = m.w || doc.w, h = m.h || doc.h, n = w * h;
    if (layer.width !== w || layer.height !== h) { layer.width = w; layer.height = h; }
    const img = lctx.createImageData(w, h), px = new Uint32Array(img.data.buffer);
    const lab = new Uint16Array(n), fill = {}, edge = {};
    for (const [v, [r, g, b, a]] of Object.entries(m.palette)) {
      fill[v] = (a << 24) | (b << 16) | (g << 8) | r; // little-endian RGBA
      edge[v] = (255 << 24) | (b << 16) | (g << 8) | r;
    }
    let pos = 0;
    for (let k = 0; k < m.values.length; k++) {
      const v = m.values[k], len = m.lengths[k];
      if (v) { lab.fill(v, pos, pos + len); px.fill(fill[v], pos, pos + len); }
      pos += len;
    }
    for (let y = 0; y < h; y++) { // outline every mask: a pixel whose right or lower neighbour differs
      const row = y * w;
      for (let x = 0; x < w; x++) {
        const i = row + x, v = lab[i];
        const r = x + 1 < w ? lab[i + 1] : 0, d = y + 1 < h ? lab[i + w] : 0;
        if (v !== r || v !== d) {
          if (v) px[i] = edge[v];
          else if (r && r !== v) px[i + 1] = edge[r];
          else if (d) px[i + w] = edge[d];
        }
      }
    }
    lctx.putImageData(img, 0, 0);
    return layer;
  }
  async function apply(doc) {
    if (!doc || doc.seq === undefined) return;
    if (inflight && doc.ack >= inflight.n) { inflight = null; away.hidden = true; remember(); }
    st.ghosts = st.ghosts.filter((g) => g.n > doc.ack);
    latest = doc.seq;
    const img = doc.image ? await loadImage(doc.image) : null;
    if (doc.seq !== latest) return; // a newer reply arrived meanwhile
    const newKey = doc.key !== st.key;
    if (img) st.img = img;
    if (doc.key === null) st.img = null;
    if (newKey && doc.key !== null && !img) { send({ op: "refresh" }); } // a reply without the picture we need
    st.overlay = paintMasks(doc); st.doc = doc;
    resendUnsent(doc);
    if (newKey || img && (doc.w !== (st.lastW || 0) || doc.h !== (st.lastH || 0))) {
      st.key = doc.key; st.boxStart = null;
      if (!doc.keep_view || doc.w !== st.lastW || doc.h !== st.lastH) fitView(); // a volume's next slice keeps the zoom
      if (doc.w) st.brush = Math.max(2, Math.round(Math.min(doc.w, doc.h) / 60));
      st.lastW = doc.w; st.lastH = doc.h; setTool(st.tool);
    }
    draw();
    api.drawn = { seq: doc.seq, ack: doc.ack, t: performance.now(), key: doc.key };
    renderFiles(doc); renderLegend(doc); renderVolume(doc); renderNotice(doc); renderOrient(doc);
    if (doc.confirm && doc.confirm.cmd && window.confirm(doc.confirm.message)) {
      send(Object.assign({}, doc.confirm.cmd, { force: true }));
    }
    pump();
  }
  const parse = (v) => (typeof v === "string" ? (v ? JSON.parse(v) : null) : v); // a JSON string: Svelte
  watch("value", () => apply(parse(props.value)));                               // keeps it whole, unproxied
  if (props.value) apply(parse(props.value));

  function renderFiles(doc) {
    if (doc.files) st.files = doc.files; // sent only when it changed
    const files = st.files || [];
    const sig = JSON.stringify([files, doc.index]);
    if (sig === st.filesSig) return;
    st.filesSig = sig;
    const box = $(".sp-files");
    box.innerHTML = "";
    element.querySelector(".sp-side").hidden = !files.length;
    files.forEach((f, k) => {
      const row = document.createElement("div");
      row.className = "sp-file" + (k === doc.index ? " sp-on" : "") + (f.status ? " sp-" + f.status : "");
      const said = { saved: "in progress", done: "done, awaiting review" }[f.status] || f.status;
      row.title = f.name + (f.status ? ` (${said})` : "") + (f.assigned ? `, for ${f.assigned}` : "");
      row.textContent = `${{ done: "✓", saved: "●", broken: "✕", accepted: "★", rejected: "↺", "": "○" }[f.status || ""] || "○"} ${f.volume ? "▦ " : ""}${f.name}`;
      if (f.why) row.title = `cannot be opened: ${f.why}`;
      row.addEventListener("click", () => send({ op: "open", index: k }));
      box.appendChild(row);
    });
    const on = box.querySelector(".sp-on");
    if (on) on.scrollIntoView({ block: "nearest" });
  }
  // A refusal or an error is shown on the canvas, where the user looks, until the next action or 8 s.
  const notice = $(".sp-notice");
  let noticeTimer = null;
  function hideNotice() { notice.hidden = true; clearTimeout(noticeTimer); }
  notice.addEventListener("mousedown", (e) => { e.stopPropagation(); hideNotice(); });
  function renderNotice(doc) {
    if (!doc.notice) return;
    notice.textContent = "⚠ " + doc.notice; notice.hidden = false;
    clearTimeout(noticeTimer); noticeTimer = setTimeout(hideNotice, 8000);
  }
  function renderOrient(doc) { // the patient's directions at the canvas edges, for a volume
    const o = $(".sp-orient"), v = doc.volume;
    o.hidden = !v || !v.edges;
    if (o.hidden) return;
    const [l, r, t, b] = v.edges, swap = flipX();
    $(".sp-o-l").textContent = swap ? r : l; $(".sp-o-r").textContent = swap ? l : r;
    $(".sp-o-t").textContent = t; $(".sp-o-b").textContent = b;
  }
  api.notice = () => (notice.hidden ? "" : notice.textContent);
  function renderLegend(doc) {
    const sig = JSON.stringify(doc.legend || []);
    if (sig === st.legendSig) return;
    st.legendSig = sig;
    $(".sp-legend").innerHTML = (doc.legend || []).map((c) =>
      `<span class="sp-class${c.used ? " sp-used" : ""}"><i style="background:${c.colour}"></i>${c.name.replace(/[&<>]/g, "")}</span>`).join("");
  }
  function renderVolume(doc) {
    const v = doc.volume, panel = $(".sp-volume");
    panel.hidden = !v;
    if (!v) return;
    const slider = $(".sp-slice");
    $(".sp-unit").textContent = v.unit || "slice"; // a video's frames: no planes, windows or patient sides
    $(".sp-window").hidden = !v.windows.length; $(".sp-plane").hidden = !v.planes.length;
    $(".sp-convention").hidden = !v.lr;
    slider.max = v.n - 1;
    if (document.activeElement !== slider) slider.value = v.k;
    $(".sp-slice-no").textContent = `${v.k} / ${v.n - 1}` + (v.covered ? ` · object on ${v.covered}` : "");
    const sig = JSON.stringify(v.windows);
    const sel = $(".sp-window");
    if (sig !== st.volSig) {
      st.volSig = sig;
      sel.innerHTML = v.windows.map((w) => `<option value="${w}">${w}</option>`).join("");
    }
    sel.value = v.window;
    const plane = $(".sp-plane");
    if (plane.options.length !== v.planes.length) plane.innerHTML = v.planes.map((w) => `<option value="${w}">${w}</option>`).join("");
    plane.value = v.plane;
  }
  $(".sp-slice").addEventListener("input", (e) => send({ op: "slice", k: Number(e.target.value) }));
  // A menu picked (by mouse or keys) gives the keyboard back to the canvas: arrows move slices again.
  const handBack = (e) => { e.target.blur(); stage.focus({ preventScroll: true }); };
  $(".sp-window").addEventListener("change", (e) => { send({ op: "window", name: e.target.value }); handBack(e); });
  $(".sp-plane").addEventListener("change", (e) => { send({ op: "plane", name: e.target.value }); handBack(e); });
  $(".sp-propagate").addEventListener("click", () => send({ op: "propagate" }));
  $(".sp-convention").addEventListener("change", (e) => {
    st.convention = e.target.value; handBack(e);
    try { localStorage.setItem("samprompt-convention", st.convention); } catch (err) { /* storage off */ }
    fitView(); draw(); if (st.doc) renderOrient(st.doc);
  });
  try { st.convention = localStorage.getItem("samprompt-convention") || "radiological"; } catch (err) { /* off */ }
  $(".sp-convention").value = st.convention;

  // ------------------------------------------------------------------ mouse
  const pos = (e) => { const r = cv.getBoundingClientRect(); return [(e.clientX - r.left) * cv.width / r.width, (e.clientY - r.top) * cv.height / r.height]; };
  const inside = (p) => st.doc && p[0] >= 0 && p[1] >= 0 && p[0] <= st.doc.w && p[1] <= st.doc.h;
  const clampPt = (p) => [Math.min(Math.max(p[0], 0), st.doc.w), Math.min(Math.max(p[1], 0), st.doc.h)];
  function nearVertex(m) {
    const rings = (st.doc && st.doc.polygons) || [];
    for (let r = 0; r < rings.length; r++) for (let k = 0; k < rings[r].length; k++) {
      const [x, y] = toScreen(...rings[r][k]);
      if (Math.hypot(x - m[0], y - m[1]) < 8) return [r, k];
    }
    return null;
  }
  function nearEdge(m) {
    const rings = (st.doc && st.doc.polygons) || [];
    let best = null;
    rings.forEach((ring, r) => ring.forEach((p, k) => {
      const q = ring[(k + 1) % ring.length], [ax, ay] = toScreen(...p), [bx, by] = toScreen(...q);
      const L = (bx - ax) ** 2 + (by - ay) ** 2 || 1, t = Math.max(0, Math.min(1, ((m[0] - ax) * (bx - ax) + (m[1] - ay) * (by - ay)) / L));
      const d = Math.hypot(ax + t * (bx - ax) - m[0], ay + t * (by - ay) - m[1]);
      if (d < 8 && (!best || d < best.d)) best = { r, k, d };
    }));
    return best;
  }
  cv.addEventListener("contextmenu", (e) => e.preventDefault());
  // Selected page text (ctrl-A, a drag that began off the canvas, a double-click on a label) would turn a
  // drag on the canvas into the browser's drag-and-drop: no mouseup, nothing sent. The canvas never starts
  // a selection or a native drag, clears any selection when pressed, and forgets a gesture the browser
  // cancelled, so that no half-made box waits for the next click.
  stage.addEventListener("dragstart", (e) => e.preventDefault());
  function cancelGesture() {
    if (st.vertex && st.vertex.from) st.doc.polygons[st.vertex.r][st.vertex.k] = st.vertex.from;
    st.drag = null; st.stroke = null; st.vertex = null; st.panning = null;
    draw();
  }
  window.addEventListener("pointercancel", cancelGesture);
  window.addEventListener("blur", () => { if (st.drag || st.stroke || st.vertex) cancelGesture(); });
  cv.addEventListener("mousedown", (e) => {
    if (!st.doc || !st.img) return;
    e.preventDefault(); // no text selection, no native drag, from here
    const sel = window.getSelection && window.getSelection();
    if (sel && sel.rangeCount) sel.removeAllRanges();
    stage.focus({ preventScroll: true });
    hideNotice();
    const m = pos(e), p = toImage(...m);
    if (e.button === 1 || e.altKey || st.space) { st.panning = { m, ox: st.ox, oy: st.oy }; e.preventDefault(); return; }
    if (e.shiftKey && e.button === 0) { if (inside(p)) send({ op: "pick", x: p[0], y: p[1] }); return; }
    if (e.button === 2 && (st.tool === "point" || st.tool === "negative")) {
      if (inside(p)) send({ op: "point", x: p[0], y: p[1], positive: false });
      return;
    }
    if (e.button !== 0) return;
    api.downAt = performance.now();
    if (st.tool === "point" || st.tool === "negative") {
      if (inside(p)) send({ op: "point", x: p[0], y: p[1], positive: st.tool === "point" });
    } else if (st.tool === "box") {
      st.drag = { kind: "box", from: st.boxStart || clampPt(p), m };
    } else if (st.tool === "brush" || st.tool === "eraser") {
      st.stroke = { erase: st.tool === "eraser", points: [p] };
    } else if (st.tool === "polygon") {
      const v = st.draft ? null : nearVertex(m);
      if (v) st.vertex = { r: v[0], k: v[1], from: st.doc.polygons[v[0]][v[1]].slice(), m };
      else if (st.draft || !nearEdge(m)) addDraft(clampPt(p), m);
    }
    draw();
  });
  window.addEventListener("mousemove", (e) => {
    if (!st.doc) return;
    const m = pos(e);
    if (st.panning) { st.ox = st.panning.ox + m[0] - st.panning.m[0]; st.oy = st.panning.oy + m[1] - st.panning.m[1]; draw(); return; }
    const p = toImage(...m);
    const over = e.target === cv;
    st.mouse = over || st.drag || st.stroke || st.vertex ? clampPt(p) : null;
    if (st.stroke) {
      const last = st.stroke.points[st.stroke.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 0.75) st.stroke.points.push(p);
    }
    if (st.vertex) st.doc.polygons[st.vertex.r][st.vertex.k] = clampPt(p);
    if (over || st.drag || st.stroke || st.vertex || st.boxStart) draw();
  });
  window.addEventListener("mouseup", (e) => {
    if (st.panning) { st.panning = null; return; }
    if (!st.doc) return;
    const m = pos(e), p = clampPt(toImage(...m));
    if (st.drag && st.drag.kind === "box") {
      const a = st.drag.from, moved = Math.hypot(m[0] - st.drag.m[0], m[1] - st.drag.m[1]) > 4;
      st.drag = null;
      if (moved || st.boxStart) {
        st.boxStart = null;
        const box = [Math.min(a[0], p[0]), Math.min(a[1], p[1]), Math.max(a[0], p[0]), Math.max(a[1], p[1])];
        if (box[2] - box[0] >= 1 && box[3] - box[1] >= 1) send({ op: "box", box });
      } else {
        st.boxStart = a; // a click: the first corner, shown until the second click
      }
    } else if (st.stroke) {
      const s = st.stroke; st.stroke = null;
      send({ op: "brush", points: s.points, radius: st.brush, erase: s.erase });
    } else if (st.vertex) {
      const v = st.vertex; st.vertex = null;
      if (Math.hypot(m[0] - v.m[0], m[1] - v.m[1]) > 2) { // a drag, not a click: one vertex, one ring
        send({ op: "vertex", ring: v.r, k: v.k, to: st.doc.polygons[v.r][v.k] });
      } else {
        st.doc.polygons[v.r][v.k] = v.from; // a click on a vertex changes nothing
      }
    }
    draw();
  });
  // A new object drawn as a polygon: clicks add vertices; a click on the first vertex, Enter or a
  // double-click closes it; Backspace takes the last vertex back; Esc drops it.
  function addDraft(p, m) {
    if (!st.draft) { st.draft = [p]; return; }
    const [fx, fy] = toScreen(...st.draft[0]);
    if (st.draft.length >= 3 && Math.hypot(fx - m[0], fy - m[1]) < 8) { closeDraft(); return; }
    const [lx, ly] = toScreen(...st.draft[st.draft.length - 1]);
    if (Math.hypot(lx - m[0], ly - m[1]) >= 3) st.draft.push(p); // a double-click's second press adds nothing
  }
  function closeDraft() {
    const pts = st.draft; st.draft = null;
    if (pts && pts.length >= 3) send({ op: "draw_polygon", points: pts });
    draw();
  }
  cv.addEventListener("dblclick", (e) => {
    if (st.tool !== "polygon" || !st.doc) return;
    if (st.draft) { closeDraft(); return; }
    const m = pos(e), v = nearVertex(m);
    if (v) send({ op: "vertex", ring: v[0], k: v[1], remove: true });
    else { const ed = nearEdge(m); if (!ed) return; send({ op: "vertex", ring: ed.r, k: ed.k, insert: true, to: toImage(...m) }); }
  });
  cv.addEventListener("mouseleave", () => { st.mouse = null; draw(); });
  cv.addEventListener("wheel", (e) => { // zoom about the cursor
    if (!st.doc) return;
    e.preventDefault();
    const m = pos(e), f = Math.exp(-e.deltaY * 0.0015);
    const fitS = Math.min(cv.width / st.doc.w, cv.height / st.doc.h);
    const s = Math.min(Math.max(st.scale * f, fitS / 4), Math.max(40, fitS * 4));
    st.ox = m[0] - (m[0] - st.ox) * s / st.scale; st.oy = m[1] - (m[1] - st.oy) * s / st.scale; st.scale = s;
    draw();
  }, { passive: false });

  // ---------------------------------------------------------------- keyboard
  // Shortcuts work whatever has focus, except where text is typed; each key press becomes one command.
  const typing = (t) => t && (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
    (t.tagName === "INPUT" && !["radio", "checkbox", "button", "range", "submit", "file"].includes(t.type)));
  const KEYS = { n: "new", z: "undo", y: "redo", a: "accept", d: "discard", s: "propose", Delete: "delete",
    Backspace: "delete", ArrowRight: "next", ArrowLeft: "prev", Enter: "done", h: "hide", l: "lock" };
  api.key = (e) => {
    if (e.key === "Enter" && typing(e.target) && e.target.closest && e.target.closest("#classes, #label")) {
      const t = e.target; // a class typed and entered: the keys go back to the canvas
      setTimeout(() => { t.blur(); stage.focus({ preventScroll: true }); }, 0);
      return;
    }
    if (typing(e.target) || !element.isConnected) return;
    let k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (e.target && e.target.classList && e.target.classList.contains("sp-slice")) // ← → on the slider: slices
      k = { ArrowLeft: "ArrowDown", ArrowRight: "ArrowUp" }[k] || k;
    if (e.ctrlKey || e.metaKey) {
      if (k === "z") { send({ op: "key", key: e.shiftKey ? "redo" : "undo" }); e.preventDefault(); }
      else if (k === "y") { send({ op: "key", key: "redo" }); e.preventDefault(); }
      return;
    }
    if (e.altKey) return;
    const tool = TOOLS.find((t) => t[2] === k);
    if (tool) { setTool(tool[0]); e.preventDefault(); return; }
    if (k === " ") { // held: drag to pan; a focused button must not be pressed by it
      if (e.target && e.target !== document.body && e.target.blur) e.target.blur();
      st.space = true; e.preventDefault(); return;
    }
    if (k === "f") { fitView(); draw(); return; }
    if (k === "[" || k === "]") { st.brush = Math.max(0.5, st.brush * (k === "]" ? 1.25 : 0.8)); setTool(st.tool); return; }
    if (k === "?") { const h = $(".sp-help"); h.hidden = !h.hidden; e.preventDefault(); return; }
    if (k === "Escape") { $(".sp-help").hidden = true; st.boxStart = null; st.draft = null; hideNotice(); cancelGesture(); return; }
    if (st.draft && (k === "Enter" || k === "Backspace")) { // keys of the polygon being drawn
      if (k === "Enter") closeDraft(); else { st.draft.pop(); if (!st.draft.length) st.draft = null; draw(); }
      e.preventDefault(); return;
    }
    if (k === "o") { st.masksOff = !st.masksOff; draw(); e.preventDefault(); return; }
    if (k === "e") { const b = document.getElementById("export"); if (b) b.click(); e.preventDefault(); return; }
    if (st.doc && st.doc.volume && (k === "ArrowUp" || k === "ArrowDown" || k === "PageUp" || k === "PageDown")) {
      const step = k === "ArrowUp" || k === "PageUp" ? 1 : -1;
      const v = st.doc.volume, next = Math.min(Math.max(v.k + step, 0), v.n - 1);
      v.k = next; send({ op: "slice", k: next }); e.preventDefault(); return;
    }
    if (k in KEYS) {
      if (e.target && e.target.blur && e.target !== document.body) e.target.blur(); // no stray button presses
      send({ op: "key", key: KEYS[k] }); e.preventDefault();
    }
  };
  if (!window.__sampromptKeys) {
    window.__sampromptKeys = true;
    document.addEventListener("keydown", (e) => window.samprompt.key && window.samprompt.key(e), true);
    document.addEventListener("keyup", (e) => { if (e.key === " " && window.samprompt.space) window.samprompt.space(); }, true);
  }
  api.space = () => { st.space = false; };
  setTool("point");
  draw();
})();
