// The viewer page: layouts of 1, 2 or 4 viewports (each its own series and plane, linked
// scrolling and reference lines for series of one Frame of Reference) or axial/coronal/sagittal
// side by side (MPR) with a shared crosshair; window/level, cine, keyboard shortcuts, metadata
// and the tag browser.
import { getJSON, sleep } from "../api.js";
import { DisplayControls, slabQuery } from "./display.js"; // h-ui
import {
  clampIndex,
  dot,
  edgeLetters,
  intersection,
  orientationDirs,
  planeWorld,
  volumeCentre,
  worldToPlane,
} from "./geometry.js";
import { ImageLoader } from "./loader.js";
import { Segments } from "./segments.js";
import { fetchSeriesConfig, LABELS, SeriesSource } from "./series.js";
import { Measurements } from "./measure.js";
import { HeaderPanel } from "./tags.js";
import { formatNumber, SERIES_MIME, Viewport } from "./viewport.js";

const COLORS = { axial: "#38bdf8", coronal: "#4ade80", sagittal: "#fb923c", acquired: "#e879f9", stack: "#3b82f6" };
const MPR = ["axial", "coronal", "sagittal"];
const GRIDS = { "1x1": 1, "1x2": 2, "2x2": 4 }; // layouts of viewports, each its own series and plane
const VIEWPORT_COLORS = ["#38bdf8", "#facc15", "#4ade80", "#f472b6"]; // outline and reference lines

/** The world point (mm) at the centre of a viewport's current image. */
function imageCentre(viewport) {
  const info = viewport.info;
  return planeWorld(info, viewport.index, (info.height - 1) / 2, (info.width - 1) / 2);
}

class Viewer {
  constructor(config) {
    this.metrics = { start: performance.now(), firstImageMs: null, shown: 0 };
    this.config = config; // the page's series (others: this.sources, viewport.source)
    this.pageSource = new SeriesSource(config);
    this.sources = new Map([[this.pageSource.id, this.pageSource]]);
    this.loading = new Map(); // series id -> promise of its config
    this.failed = new Set(); // series ids refused (404): not shown; one not ready yet is tried again
    this.series = config.series;
    this.planes = this.series.planes;
    this.version = this.series.render_version;
    this.overlay = config.overlay;
    this.isVolume = this.pageSource.isVolume;
    this.tool = "scroll";
    this.layout = null;
    this.gridLayout = "1x1";
    this.layoutSeq = 0;
    this.linked = true;
    this.maximized = null;
    this.singlePlane = this.pageSource.nativePlane;
    this.slots = [{ id: this.pageSource.id, plane: this.singlePlane }];
    this.railIds = [...document.querySelectorAll(".series-rail a[data-series]")].map((a) => Number(a.dataset.series));
    this.viewports = [];
    this.active = null;
    this.crosshair = null;
    this.cinePlaying = false;
    this.loader = new ImageLoader({
      urlFor: (key) => this.keyToUrl(key),
      renew: (key) => this._keySource(key).renewImageUrls(true),
      beforeLoad: (key) => this._keySource(key).renewImageUrls(false),
      onAuthLost: () =>
        this.setPill(config.readOnly ? "This link no longer works: it expired or was revoked." : "Your session has ended: reload and sign in.", true),
    });
    this.container = document.getElementById("viewports");
    this.panel = null;
    this.header = new HeaderPanel(this, {
      tagsPanel: document.getElementById("panel-tags"),
      metaList: document.getElementById("image-meta"),
      search: document.getElementById("tag-search"),
      source: document.getElementById("tag-source"),
      table: document.getElementById("tag-table"),
    });
    this.presetSelect = document.getElementById("preset");
    this._bindPresets();
    this._bindToolbar();
    this._bindRail();
    this.display = new DisplayControls(this); // h-ui: invert, colour map, slab, PNG, fps, phone toolbar
    this._bindKeys();
    const wanted = this._readHash();
    this.linked = wanted.linked;
    if (wanted.slots.length) this.slots = wanted.slots;
    this._watchStatus();
    this.setLayout(wanted.layout || "1x1");
    // measurement tools and their panel (measure.js); none through a share link (read-only)
    this.measure = config.readOnly ? null : new Measurements(this);
    setInterval(() => this._updateCacheBars(), 700);
    this.segments = new Segments(this); // SEG overlays (segments.js)
  }

  /** Hook from Viewport._show: a viewport shows image `index` (overlays follow it). */
  onImageShown(viewport, index) {
    this.segments?.show(viewport, index);
  }

  // ---- series and images ---------------------------------------------------------------
  /** The series shown in `viewport` (default: the active one), or the page's. */
  sourceOf(viewport = this.active) {
    return viewport?.source || this.pageSource;
  }

  /** A series' config: the page's is embedded, others are fetched once (a 404 if not visible). */
  loadSource(id) {
    id = Number(id);
    if (!Number.isInteger(id) || id <= 0) return Promise.reject(new Error("Not a series."));
    if (this.sources.has(id)) return Promise.resolve(this.sources.get(id));
    if (!this.loading.has(id)) {
      const promise = fetchSeriesConfig(this.config.urls.seriesConfig, id)
        .then((config) => {
          const source = new SeriesSource(config);
          this.sources.set(id, source);
          this.failed.delete(id);
          return source;
        })
        .finally(() => this.loading.delete(id));
      this.loading.set(id, promise);
    }
    return this.loading.get(id);
  }

  /** What identifies an image in the loader's cache: series, plane, index and window (not the
   *  URL, which is signed anew every few minutes). */
  imageKey(plane, index, window, viewport = this.active) {
    if (window === undefined) window = viewport.window;
    let key = `${viewport.source.id}:${plane}/${index}`;
    const query = [];
    if (window && !viewport.windowIsDefault) query.push(`wc=${window.center}&ww=${window.width}`);
    const slab = plane === viewport.plane ? slabQuery(viewport) : ""; // h-ui: mode=mip|minip|avg&slab=<mm>
    if (slab) query.push(slab);
    if (query.length) key += `?${query.join("&")}`;
    return key;
  }

  _keySource(key) {
    return this.sources.get(Number(key.split(":")[0])) || this.pageSource;
  }

  keyToUrl(key) {
    const [head, query] = key.split("?");
    const [plane, index] = head.split(":")[1].split("/");
    return this._keySource(key).url(plane, index, query);
  }


  get window() {
    return this.active?.window ?? null;
  }

  get windowName() {
    return this.active?.windowName ?? "Default";
  }

  get urls() {
    return this.sourceOf().urls;
  }

  planeLabel(plane, viewport = this.active) {
    return this.sourceOf(viewport).planeLabel(plane);
  }

  /** Milliseconds from asking for an image to seeing it (kept for the last 1000 images). */
  latency(ms) {
    const list = this.metrics.latencies || (this.metrics.latencies = []);
    list.push(Math.round(ms));
    if (list.length > 1000) list.shift();
  }

  imageShown(viewport) {
    this.metrics.shown += 1;
    if (this.metrics.firstImageMs === null) {
      this.metrics.firstImageMs = Math.round(performance.now() - this.metrics.start);
      document.body.dataset.firstImageMs = String(this.metrics.firstImageMs);
    }
    if (viewport === this.active) this._describeCurrent();
  }

  // ---- layout ----------------------------------------------------------------------------
  /** 1x1, 1x2, 2x2 (each viewport its own series and plane: `this.slots`) or "mpr" (the three
   *  planes of the active viewport's series with a shared crosshair). "slices": the last grid. */
  setLayout(layout) {
    if (layout === "slices" || !(layout in GRIDS || layout === "mpr")) layout = this.gridLayout;
    const seq = ++this.layoutSeq;
    const first = this.slots[0];
    if (layout === "mpr" && !this.active && first && !this.sources.has(first.id) && !this.failed.has(first.id)) {
      this._loadThen([first], layout, seq); // MPR of a series named in the link
      return;
    }
    const mprSource = this.active?.source || this.sources.get(first?.id) || this.pageSource;
    if (layout === "mpr" && !mprSource.isVolume) layout = this.gridLayout;
    const wanted = layout === "mpr" ? [] : this._fillSlots(GRIDS[layout]);
    const missing = wanted.filter((slot) => !this.sources.has(slot.id));
    if (missing.length) {
      this._loadThen(missing, layout, seq);
      return;
    }
    this.layout = layout;
    this.stopCine();
    this.maximized = null;
    const keep = layout === "mpr" || this.viewports.length === 0 || this.container.classList.contains("mpr") ? 0 : GRIDS[layout];
    for (const viewport of this.viewports.slice(keep)) viewport.destroy();
    this.viewports = this.viewports.slice(0, keep);
    this.container.classList.remove("mpr", "maximized", ...Object.keys(GRIDS).map((name) => `grid-${name}`));
    this.container.classList.add(layout === "mpr" ? "mpr" : `grid-${layout}`);
    if (layout === "mpr") {
      this.crosshair = volumeCentre(mprSource.planes.axial);
      for (const plane of MPR) this.viewports.push(this._makeViewport(mprSource, plane, LABELS[plane], COLORS[plane]));
    } else {
      this.gridLayout = layout;
      this.crosshair = null;
      wanted.forEach((slot, n) => {
        const existing = this.viewports[n];
        if (existing && existing.source.id === slot.id && existing.plane === slot.plane) return;
        const viewport = this._makeViewport(this.sources.get(slot.id) || this.pageSource, slot.plane, "", VIEWPORT_COLORS[n]);
        if (existing) {
          this.container.insertBefore(viewport.root, existing.root);
          existing.destroy();
        }
        this.viewports[n] = viewport;
      });
    }
    for (const viewport of this.viewports) viewport.root.classList.remove("max");
    const keepActive = this.viewports.includes(this.active) ? this.active : this.viewports[0];
    this.active = null;
    this.activate(keepActive);
    this._drawLines();
    this._syncToolbar();
    this._saveHash();
  }

  /** Fetch the configs of other series, then lay out again; one not visible (404) or not ready
   *  is left out (the page's series takes its place) and the pill says why. */
  _loadThen(slots, layout, seq) {
    Promise.allSettled(slots.map((slot) => this.loadSource(slot.id))).then((results) => {
      results.forEach((result, n) => result.status === "rejected" && result.reason.refused && this.failed.add(slots[n].id));
      const refused = results.find((result) => result.status === "rejected");
      if (refused) this.setPill(`A series of this layout cannot be shown: ${refused.reason.message}`, true);
      if (seq === this.layoutSeq) this.setLayout(layout);
    });
  }

  /** The (series id, plane) of the first `count` grid viewports: kept from before, the rest
   *  filled with the study's other series, then other planes of the first. */
  _fillSlots(count) {
    const sources = (slot) => this.sources.get(slot.id);
    let slots = this.slots.filter((slot) => !this.failed.has(slot.id)); // beyond `count`: kept for later
    if (!slots.length) slots = [{ id: this.pageSource.id, plane: this.pageSource.nativePlane }];
    for (const id of this.railIds) {
      if (slots.length >= count) break;
      if (!this.failed.has(id) && !slots.some((slot) => slot.id === id)) slots.push({ id, plane: null });
    }
    const first = sources(slots[0]) || this.pageSource;
    const planes = first.isVolume ? MPR : [first.nativePlane];
    while (slots.length < count) {
      const used = slots.filter((slot) => slot.id === first.id).map((slot) => slot.plane);
      slots.push({ id: first.id, plane: planes.find((plane) => !used.includes(plane)) || first.nativePlane });
    }
    this.slots = slots.map((slot) => {
      const source = sources(slot);
      if (!source) return slot; // loaded next
      return { id: slot.id, plane: slot.plane in source.planes ? slot.plane : source.nativePlane };
    });
    return this.slots.slice(0, count);
  }

  _makeViewport(source, plane, title, color) {
    const info = source.planes[plane];
    const viewport = new Viewport(this, { source, plane, info, title, color, letters: this._letters(plane, info, source) });
    viewport.setTool(this.tool);
    viewport.mount(this.container);
    viewport.setIndex(this._startIndex(viewport), "init");
    return viewport;
  }

  /** Where a new viewport opens: with a linked viewport's position, else mid-volume (first image of a stack). */
  _startIndex(viewport) {
    if (this.crosshair && this.layout === "mpr") return clampIndex(worldToPlane(viewport.info, this.crosshair).index, viewport.count);
    const leader = this.linked && this.viewports.find((other) => other !== viewport && this._linkable(other, viewport));
    if (leader) return clampIndex(worldToPlane(viewport.info, imageCentre(leader)).index, viewport.count);
    const source = viewport.source;
    if (source.isVolume) return clampIndex(worldToPlane(viewport.info, volumeCentre(source.planes.axial)).index, viewport.count);
    return 0;
  }

  /** Show `source` (at `plane`, else its native plane) in `viewport` instead of what it shows. */
  assign(viewport, source, plane = null) {
    if (!source.planes[plane]) plane = source.nativePlane;
    if (this.layout === "mpr") {
      this.slots[0] = { id: source.id, plane };
      this.setLayout(this.gridLayout);
      return;
    }
    const n = this.viewports.indexOf(viewport);
    if (n < 0) return;
    this.slots[n] = { id: source.id, plane };
    const fresh = this._makeViewport(source, plane, "", VIEWPORT_COLORS[n]);
    if (source === viewport.source) fresh.copyWindow(viewport);
    this.container.insertBefore(fresh.root, viewport.root);
    if (this.maximized === viewport) this.maximized = fresh;
    fresh.root.classList.toggle("max", this.maximized === fresh);
    viewport.destroy();
    this.viewports[n] = fresh;
    this.activate(fresh);
    this._drawLines();
    this._syncToolbar();
    this._saveHash();
  }

  /** A series dropped on (or chosen for) a viewport. */
  showSeries(viewport, id) {
    return this.loadSource(id)
      .then((source) => this.assign(viewport, source))
      .catch((error) => this.setPill(`That series cannot be shown: ${error.message}`, true));
  }

  setSinglePlane(plane) {
    const viewport = this.active;
    if (!viewport || !viewport.source.planes[plane]) return;
    if (this.layout === "mpr") {
      this.slots[0] = { id: viewport.source.id, plane };
      this.setLayout(this.gridLayout);
    } else if (viewport.plane !== plane) {
      this.assign(viewport, viewport.source, plane);
    }
  }

  /** Double-click: one viewport fills the layout, or the layout comes back (with one viewport: fit). */
  toggleMaximise(viewport) {
    if (this.viewports.length < 2) {
      viewport.fit();
      return;
    }
    this.maximized = this.maximized === viewport ? null : viewport;
    this.container.classList.toggle("maximized", Boolean(this.maximized));
    for (const other of this.viewports) other.root.classList.toggle("max", other === this.maximized);
    this.activate(viewport);
  }

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.querySelector(".viewer-main")?.requestFullscreen?.();
  }

  setLinked(linked) {
    this.linked = linked;
    if (linked && this.active) this._follow(this.active);
    this._syncToolbar();
    this._saveHash();
  }

  _letters(plane, info, source = this.pageSource) {
    if (info.x_dir && info.y_dir) return edgeLetters(info.x_dir, info.y_dir);
    const dirs = orientationDirs(source.config.orientation);
    return dirs ? edgeLetters(dirs.xDir, dirs.yDir) : null;
  }

  activate(viewport) {
    if (this.active === viewport) return;
    this.active = viewport;
    for (const other of this.viewports) other.setActive(other === viewport && this.viewports.length > 1);
    if (viewport && viewport.source !== this.presetSource) this._fillPresets();
    if (viewport) this._windowChanged(viewport.windowOption);
    this._drawLines();
    this._syncToolbar();
    this.display?.sync(); // h-ui: the toolbar shows the active viewport's display settings
    this._describeCurrent();
  }

  // ---- the URL hash: layout and what each viewport shows ---------------------------------
  /** `#layout=2x2&vp=12:axial,13:axial,...` (and `&link=0`); `#mpr` (older links) is MPR. */
  _readHash() {
    const hash = location.hash.replace(/^#/, "");
    if (hash === "mpr") return { layout: "mpr", slots: [], linked: true };
    const params = new URLSearchParams(hash);
    const layout = params.get("layout");
    const slots = [];
    for (const item of (params.get("vp") || "").split(",")) {
      const [id, plane] = item.split(":");
      if (/^\d{1,12}$/.test(id || "")) slots.push({ id: Number(id), plane: plane || null });
    }
    return { layout: layout in GRIDS || layout === "mpr" ? layout : null, slots: slots.slice(0, 4), linked: params.get("link") !== "0" };
  }

  _saveHash() {
    let hash = "";
    const shown = this.layout === "mpr" ? [{ id: this.sourceOf().id, plane: "axial" }] : this.slots.slice(0, GRIDS[this.layout]);
    const plain = this.layout === "1x1" && shown[0]?.id === this.pageSource.id && shown[0]?.plane === this.pageSource.nativePlane;
    if (!plain || !this.linked) {
      hash = `#layout=${this.layout}&vp=${shown.map((slot) => `${slot.id}:${slot.plane}`).join(",")}`;
      if (!this.linked) hash += "&link=0";
    }
    history.replaceState(null, "", hash || location.pathname + location.search);
    for (const link of document.querySelectorAll(".series-rail a[data-series]")) {
      link.classList.toggle("shown", this.viewports.some((viewport) => String(viewport.source.id) === link.dataset.series));
    }
  }

  // ---- linked scrolling, crosshair and reference lines -----------------------------------
  indexChanged(viewport, source) {
    if (this.crosshair && source !== "crosshair" && source !== "init") {
      const here = worldToPlane(viewport.info, this.crosshair);
      this.crosshair = planeWorld(viewport.info, viewport.index, here.row, here.col);
    }
    if (this.layout !== "mpr" && this.linked && source !== "link" && source !== "init") this._follow(viewport);
    this._drawLines();
    this.measure?.draw(viewport); // measure.js: measurements lying in this image
    if (viewport === this.active) this._describeCurrent();
  }

  /** Can `b` follow `a` by patient position: same Frame of Reference, both with geometry, planes
   *  about parallel (scrolling one moves the other along the same direction)? */
  _linkable(a, b) {
    if (!a.info.step_dir || !b.info.step_dir || !a.source.sharesFrameWith(b.source)) return false;
    return Math.abs(dot(a.info.step_dir, b.info.step_dir)) > 0.7;
  }

  /** Move the viewports linked to `leader` to the image nearest its image's position along their normal. */
  _follow(leader) {
    const world = imageCentre(leader);
    for (const other of this.viewports) {
      if (other === leader || !this._linkable(leader, other)) continue;
      const index = clampIndex(worldToPlane(other.info, world).index, other.count);
      if (index !== other.index) other.setIndex(index, "link");
    }
  }

  /** A click or tap at image pixel (row, col): in MPR, move the other planes to that point. */
  pointAt(viewport, row, col) {
    if (this.layout !== "mpr" || !this.crosshair) return;
    this.crosshair = planeWorld(viewport.info, viewport.index, row, col);
    for (const other of this.viewports) {
      if (other === viewport) continue;
      other.setIndex(clampIndex(worldToPlane(other.info, this.crosshair).index, other.count), "crosshair");
    }
    this._drawCrosshair();
    this._describeCurrent();
  }

  _drawLines() {
    if (this.layout === "mpr") this._drawCrosshair();
    else this._drawReferenceLines();
  }

  _drawCrosshair() {
    for (const q of this.viewports) {
      const lines = [];
      for (const r of this.viewports) {
        if (r === q) continue;
        const segment = intersection(q.info, q.index, r.info, r.index);
        if (segment) lines.push({ ...segment, color: COLORS[r.plane], plane: r.plane });
      }
      q.setLines(lines);
    }
  }

  /** In each viewport, where the active viewport's image plane cuts it (same Frame of Reference,
   *  not parallel), in the active viewport's colour. */
  _drawReferenceLines() {
    const active = this.active;
    for (const q of this.viewports) {
      const lines = [];
      const crosses =
        active && q !== active && q.info.step_dir && active.info.step_dir && q.source.sharesFrameWith(active.source);
      if (crosses && Math.abs(dot(q.info.step_dir, active.info.step_dir)) < 0.999) {
        const segment = intersection(q.info, q.index, active.info, active.index);
        if (segment) lines.push({ ...segment, color: active.color, plane: active.plane, source: this.viewports.indexOf(active) });
      }
      q.setLines(lines);
    }
  }

  // ---- window / level --------------------------------------------------------------------
  // Each viewport has its own window; presets and drags apply to the active one (in MPR to the
  // three planes of its series together).
  _bindPresets() {
    this.presetSelect.addEventListener("change", () => {
      const value = this.presetSelect.value;
      if (value === "default") this.resetWindow();
      else if (value !== "custom") this.applyPreset(Number(value));
    });
  }

  /** The preset list of the active viewport's series. */
  _fillPresets() {
    const source = this.sourceOf();
    const select = this.presetSelect;
    this.presetSource = source;
    const options = [];
    if (source.defaultWindow) {
      options.push(["default", "0 · Default"]);
    } else {
      options.push(["default", source.isColor ? "Colour image" : "Default"]);
    }
    source.presets.forEach((preset, i) => options.push([String(i), i < 9 ? `${i + 1} · ${preset.name}` : preset.name]));
    options.push(["custom", "Custom"]);
    select.replaceChildren();
    for (const [value, label] of options) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      if (value === "custom") option.hidden = true;
      select.append(option);
    }
    select.disabled = source.isColor;
  }

  _windowTargets() {
    if (!this.active) return [];
    return this.layout === "mpr" ? this.viewports : [this.active];
  }

  applyPreset(number) {
    const preset = this.sourceOf().presets[number];
    if (!preset) return;
    this.setWindow({ center: preset.center, width: preset.width }, preset.name, String(number));
  }

  resetWindow() {
    const targets = this._windowTargets().filter((viewport) => viewport.window || viewport.source.defaultWindow);
    if (!targets.length) return;
    for (const viewport of targets) viewport.setWindowState(viewport.source.defaultWindow, true, "Default", "default");
    this._windowChanged("default");
    this._requestAll(targets);
  }

  setWindow(window, name = "Custom", option = "custom") {
    if (this.sourceOf().isColor) return;
    const targets = this._windowTargets();
    for (const viewport of targets) viewport.setWindowState(roundWindow(window), false, name, option);
    this._windowChanged(option);
    this._requestAll(targets);
  }

  /** Right-drag: left/right changes the width, up/down the centre; the screen follows at once. */
  dragWindow(dx, dy) {
    if (this.sourceOf().isColor || !this.active) return;
    const base = this.active.window || { center: 0, width: 1 };
    const width = Math.max(0.01, base.width * Math.exp(dx * 0.005));
    const center = base.center + dy * Math.max(base.width, 1) * 0.004;
    for (const viewport of this._windowTargets()) viewport.setWindowState({ center, width }, false, "Custom", "custom");
    this._windowChanged("custom");
    clearTimeout(this.windowTimer);
    this.windowTimer = setTimeout(() => this.commitWindow(), 140);
  }

  commitWindow() {
    clearTimeout(this.windowTimer);
    const targets = this._windowTargets().filter((viewport) => viewport.window && !viewport.windowIsDefault);
    if (!targets.length) return;
    for (const viewport of targets) viewport.window = roundWindow(viewport.window);
    this._windowChanged(this.presetSelect.value);
    this._requestAll(targets);
  }

  _windowChanged(option) {
    this.presetSelect.value = option;
    const w = this.window;
    document.getElementById("wl-readout").textContent = w ? `W ${formatNumber(w.width)} L ${formatNumber(w.center)}` : "";
    for (const viewport of this.viewports) {
      viewport.preview();
      viewport.updateOverlay();
    }
  }

  _requestAll(viewports = this.viewports) {
    // the active viewport first: it is what the user is looking at
    const order = [...viewports].sort((a, b) => (b === this.active) - (a === this.active));
    for (const viewport of order) viewport.request();
  }

  // ---- zoom ------------------------------------------------------------------------------
  fitAll() {
    for (const viewport of this.viewports) viewport.fit();
  }

  reset() {
    this.stopCine();
    this.fitAll();
    this.resetWindow();
  }

  // ---- cine ------------------------------------------------------------------------------
  toggleCine() {
    if (this.cinePlaying) this.stopCine();
    else this.startCine();
  }

  startCine() {
    const viewport = this.active;
    if (!viewport || viewport.count < 2) return;
    this.cinePlaying = true;
    viewport.direction = 1;
    viewport.prefetch();
    this._syncToolbar();
    const fpsInput = document.getElementById("fps");
    const tick = async () => {
      while (this.cinePlaying && this.active === viewport) {
        const fps = Math.min(60, Math.max(1, Number(fpsInput.value) || 12));
        const started = performance.now();
        const next = (viewport.index + 1) % viewport.count;
        const key = viewport.key(next);
        // wait for the next image rather than skipping it
        for (let waited = 0; !this.loader.ready(key) && waited < 5000 && this.cinePlaying; waited += 20) await sleep(20);
        if (!this.cinePlaying) break;
        viewport.setIndex(next, "cine");
        await sleep(Math.max(0, 1000 / fps - (performance.now() - started)));
      }
      this.stopCine();
    };
    tick();
  }

  stopCine() {
    if (!this.cinePlaying) return;
    this.cinePlaying = false;
    this._syncToolbar();
  }

  // ---- panels ----------------------------------------------------------------------------
  showPanel(name) {
    if ((name === "tags" && !this.urls.tags) || (name === "measurements" && !this.measure)) return; // off through a link
    this.panel = name;
    document.getElementById("panel-metadata").hidden = name !== "metadata";
    document.getElementById("panel-tags").hidden = name !== "tags";
    document.getElementById("panel-measure").hidden = name !== "measurements"; // measure.js
    this._syncToolbar();
    if (name) {
      this.header.refresh(true);
      for (const viewport of this.viewports) requestAnimationFrame(() => viewport.view.fitted && viewport.fit());
    }
    if (name === "tags") document.getElementById("tag-search").focus({ preventScroll: true });
  }

  /** plane/index of the active image, and the crosshair point for reconstructions. */
  headerQuery() {
    const viewport = this.active;
    if (!viewport) return null;
    const query = { plane: viewport.plane, index: String(viewport.index) };
    // (the tags URL is the active viewport's series': this.urls)
    if (this.crosshair && this.layout === "mpr") {
      const here = worldToPlane(viewport.info, this.crosshair);
      query.row = here.row.toFixed(1);
      query.col = here.col.toFixed(1);
    }
    return query;
  }

  _describeCurrent() {
    if (this.panel) this.header.refresh();
  }

  /** The "Series" list of the metadata panel: the page's (from the server) or, when the active
   *  viewport shows another series, that one's from its config. */
  _describeSeries() {
    const list = document.getElementById("series-meta");
    if (!list) return;
    this.pageSeriesMeta ||= [...list.childNodes].map((node) => node.cloneNode(true));
    const source = this.sourceOf();
    if (list.dataset.series === String(source.id)) return;
    list.dataset.series = String(source.id);
    if (source === this.pageSource) {
      list.replaceChildren(...this.pageSeriesMeta.map((node) => node.cloneNode(true)));
      return;
    }
    const s = source.series;
    const mm = (value, digits) => (value ? `${value.toFixed(digits)} mm` : "—");
    const rows = [
      ["Number", s.series_number ?? "—"],
      ["Modality", s.modality || "—"],
      ["Description", s.description || "—"],
      ["Body part", s.body_part_examined || "—"],
      ["Images", `${s.num_instances} file${s.num_instances === 1 ? "" : "s"}, ${s.num_frames} frame${s.num_frames === 1 ? "" : "s"}`],
      ["Matrix", `${s.columns} × ${s.rows}`],
      ["Pixel spacing", s.pixel_spacing_row_mm ? `${s.pixel_spacing_row_mm.toFixed(3)} × ${mm(s.pixel_spacing_col_mm, 3)}` : "—"],
      ["Slice thickness", mm(s.slice_thickness_mm, 2)],
      ["Slice spacing", mm(s.slice_spacing_mm, 2)],
      ["Photometric", s.photometric_interpretation || "—"],
      ["Default window", s.window ? `C ${formatNumber(s.window.center)} / W ${formatNumber(s.window.width)}` : "—"],
      ["Shown as", s.is_volume ? "volume: axial, coronal and sagittal planes" : "stack of images"],
      ["Series UID", s.series_instance_uid || "—"],
    ];
    list.replaceChildren();
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      if (term === "Series UID") dd.className = "mono uid";
      list.append(dt, dd);
    }
  }

  /** The "Current image" list of the metadata panel. */
  describeImage(header) {
    const viewport = this.active;
    const list = this.header.metaList;
    if (!viewport || !list) return;
    this._describeSeries();
    const info = viewport.info;
    const items = [
      ...(this.viewports.some((other) => other.source !== this.pageSource) ? [["Series", viewport.source.label]] : []),
      ["Plane", this.planeLabel(viewport.plane)],
      ["Image", `${viewport.index + 1} of ${viewport.count}`],
      ["Size", `${viewport.size.w} × ${viewport.size.h} pixels`],
    ];
    if (info.pixel_mm) items.push(["Pixel size", `${info.pixel_mm.toFixed(3)} mm (square)`]);
    if (info.step_mm) items.push(["Spacing between images", `${info.step_mm.toFixed(3)} mm`]);
    if (this.window) items.push(["Window", `${this.windowName}: W ${formatNumber(this.window.width)} L ${formatNumber(this.window.center)}`]);
    if (header?.reconstruction) items.push(["Source", "reconstruction; nearest acquired image below"]);
    for (const row of this.header.metadataValues()) items.push([row.name, row.value]);
    list.replaceChildren();
    for (const [term, value] of items) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
  }

  // ---- toolbar and keys ------------------------------------------------------------------
  setTool(tool) {
    this.tool = tool;
    for (const viewport of this.viewports) viewport.setTool(tool);
    this._syncToolbar();
  }

  _syncToolbar() {
    const selected = this.panel || (this.layout === "mpr" ? "mpr" : "slices");
    for (const tab of document.querySelectorAll("[role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === selected));
    for (const button of document.querySelectorAll("#tools [data-tool], #measure-tools [data-tool]")) button.setAttribute("aria-pressed", String(button.dataset.tool === this.tool));
    const picker = document.getElementById("plane-picker");
    const source = this.sourceOf();
    if (picker) {
      picker.hidden = this.layout === "mpr" || !source.isVolume;
      for (const button of picker.querySelectorAll("button")) {
        button.classList.toggle("active", button.dataset.plane === this.active?.plane);
        button.hidden = !(button.dataset.plane in source.planes); // "acquired": oblique volumes only
      }
    }
    const mpr = document.getElementById("tab-mpr");
    mpr.disabled = !source.isVolume;
    mpr.title = source.isVolume ? "" : "Reconstructions need a volume; this series is a stack of separate images";
    for (const button of document.querySelectorAll("#layout-picker [data-layout]")) {
      button.setAttribute("aria-pressed", String(this.layout === button.dataset.layout));
    }
    const link = document.getElementById("link-scroll");
    link.setAttribute("aria-pressed", String(this.linked));
    link.hidden = this.layout === "mpr" || this.viewports.length < 2;
    const cine = document.getElementById("cine");
    cine.textContent = this.cinePlaying ? "❚❚ Pause" : "▶ Play";
    cine.setAttribute("aria-pressed", String(this.cinePlaying));
  }

  _bindToolbar() {
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => {
        const name = tab.dataset.tab;
        if (name === "slices" || name === "mpr") {
          this._switchLayout(name);
        } else {
          this.showPanel(this.panel === name ? null : name);
        }
      });
    }
    document.getElementById("plane-picker")?.addEventListener("click", (event) => {
      const plane = event.target.closest("[data-plane]")?.dataset.plane;
      if (plane) this.setSinglePlane(plane);
    });
    document.getElementById("tools").addEventListener("click", (event) => {
      const tool = event.target.closest("[data-tool]")?.dataset.tool;
      if (tool) this.setTool(tool);
    });
    document.getElementById("layout-picker").addEventListener("click", (event) => {
      const layout = event.target.closest("[data-layout]")?.dataset.layout;
      if (layout) {
        this.showPanel(null);
        this.setLayout(layout);
      }
    });
    document.getElementById("link-scroll").addEventListener("click", () => this.setLinked(!this.linked));
    const fullscreen = document.getElementById("fullscreen");
    fullscreen.hidden = !document.fullscreenEnabled;
    fullscreen.addEventListener("click", () => this.toggleFullscreen());
    document.addEventListener("fullscreenchange", () => {
      const on = Boolean(document.fullscreenElement);
      fullscreen.setAttribute("aria-pressed", String(on));
      fullscreen.title = on ? "Leave full screen" : "Full screen";
      fullscreen.setAttribute("aria-label", fullscreen.title);
    });
    document.getElementById("fit").addEventListener("click", () => this.fitAll());
    document.getElementById("reset").addEventListener("click", () => this.reset());
    document.getElementById("cine").addEventListener("click", () => this.toggleCine());
    const help = document.getElementById("help");
    document.getElementById("help-open").addEventListener("click", () => help.showModal());
    help.querySelector("[data-close]").addEventListener("click", () => help.close());
    help.addEventListener("click", (event) => event.target === help && help.close());
  }

  /** The series strip: drag a series into a viewport; with several viewports a click (or Enter)
   *  shows it in the active one (with one, it opens that series' page as before). */
  _bindRail() {
    const rail = document.querySelector(".series-rail");
    if (!rail) return;
    rail.addEventListener("dragstart", (event) => {
      const link = event.target.closest("a[data-series]");
      if (!link) return;
      event.dataTransfer.setData(SERIES_MIME, link.dataset.series);
      event.dataTransfer.setData("text/uri-list", link.href);
      event.dataTransfer.effectAllowed = "copyLink";
    });
    rail.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-series]");
      if (!link || this.viewports.length < 2 || this.layout === "mpr" || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      this.showSeries(this.active, Number(link.dataset.series));
    });
  }

  _bindKeys() {
    document.addEventListener("keydown", (event) => {
      const field = event.target.closest("input, select, textarea, [contenteditable]");
      if ((field && field.type !== "range") || event.altKey) return;
      if (document.getElementById("help").open) return;
      const viewport = this.active;
      const key = event.key;
      const page = viewport ? Math.max(10, Math.round(viewport.count / 10)) : 10;
      const actions = {
        ArrowUp: () => viewport?.step(-1),
        ArrowLeft: () => viewport?.step(-1),
        ArrowDown: () => viewport?.step(1),
        ArrowRight: () => viewport?.step(1),
        PageUp: () => viewport?.step(-page),
        PageDown: () => viewport?.step(page),
        Home: () => viewport?.setIndex(0, "key"),
        End: () => viewport?.setIndex(viewport.count - 1, "key"),
        " ": () => this.toggleCine(),
        "+": () => viewport?.zoomAt(1.25),
        "=": () => viewport?.zoomAt(1.25),
        "-": () => viewport?.zoomAt(0.8),
        f: () => this.fitAll(),
        r: () => this.reset(),
        s: () => this._switchLayout("slices"),
        m: () => this._switchLayout("mpr"),
        a: () => this.setSinglePlane("axial"),
        c: () => this.setSinglePlane("coronal"),
        g: () => this.setSinglePlane("sagittal"),
        v: () => this._cycleViewport(),
        l: () => this.setLinked(!this.linked),
        i: () => this.showPanel(this.panel === "metadata" ? null : "metadata"),
        t: () => this.showPanel(this.panel === "tags" ? null : "tags"),
        o: () => {
          this.container.classList.toggle("overlay-off");
          for (const viewport of this.viewports) if (viewport.view.fitted) viewport.fit(); // h-ui: phones fit around overlays
        },
        n: () => this.display.toggleInvert(), // h-ui
        k: () => this.display.nextColormap(), // h-ui
        "?": () => document.getElementById("help").showModal(),
        Escape: () => (this.measure?.draft ? this.measure.cancel() : this.showPanel(null)),
        0: () => this.resetWindow(),
      };
      for (let i = 1; i <= 9; i++) actions[String(i)] = () => this.applyPreset(i - 1);
      const action = actions[key] || actions[key.toLowerCase()];
      if (!action || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      action();
    });
  }

  _switchLayout(layout) {
    this.showPanel(null);
    const current = this.layout === "mpr" ? "mpr" : "slices";
    if (layout !== current && (layout !== "mpr" || this.sourceOf().isVolume)) this.setLayout(layout);
  }

  _cycleViewport() {
    if (this.viewports.length < 2) return;
    const next = (this.viewports.indexOf(this.active) + 1) % this.viewports.length;
    this.activate(this.viewports[next]);
  }

  _updateCacheBars() {
    for (const viewport of this.viewports) {
      const keys = [];
      const stride = Math.max(1, Math.floor(viewport.count / 120));
      for (let i = 0; i < viewport.count; i += stride) keys.push(this.imageKey(viewport.plane, i, undefined, viewport));
      viewport.updateCacheBar(this.loader.readyShare(keys));
    }
  }

  // ---- render status ---------------------------------------------------------------------
  setPill(text, bad = false) {
    const pill = document.getElementById("render-pill");
    pill.hidden = !text;
    pill.textContent = text || "";
    pill.classList.toggle("bad", bad);
  }

  async _watchStatus() {
    let status = this.series;
    while (["pending", "rendering"].includes(status.render_status)) {
      const share = status.images_total ? Math.floor((100 * status.images_done) / status.images_total) : 0;
      this.setPill(`Preparing images ${share}%`);
      await sleep(2500);
      try {
        status = await getJSON(this.pageSource.urls.status);
      } catch {
        break;
      }
      this.pageSource.setImages(status.images);
      if (status.render_version !== this.version) {
        this.setPill("This series was updated: reload to see the new images", true);
        return;
      }
    }
    if (status.render_status === "failed") this.setPill("Some images of this series could not be prepared", true);
    else this.setPill("");
  }
}

function roundWindow(window) {
  const round = (value) => (Math.abs(window.width) >= 20 ? Math.round(value) : Math.round(value * 100) / 100);
  return { center: round(window.center), width: Math.max(round(window.width), 0.01) };
}

const config = JSON.parse(document.getElementById("viewer-config").textContent);
window.dicomViewer = new Viewer(config);
