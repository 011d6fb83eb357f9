// Measurement tools: length, angle, ellipse and rectangle ROI, probe.
//
// Points are drawn in the image pixels of a viewport's plane (pixel centres are whole numbers)
// and saved through /api/series/<id>/annotations/, which keeps them in patient coordinates too
// (LPS mm). Each measurement is drawn, as SVG in the viewport's stage, on every image whose slab
// (± half a step) holds all its points: re-projected with dot products when the image changes,
// with no request per frame. ROI statistics and probe values come from the series' /roi and
// /probe endpoints (computed on the stored values); their errors are shown in the panel.
import { csrfToken, getJSON } from "../api.js";
import { planeWorld, worldToPlane } from "./geometry.js";
import { LABELS as PLANE_LABELS } from "./series.js";

const SVG = "http://www.w3.org/2000/svg";
export const MEASURE_TOOLS = ["length", "angle", "ellipse", "rectangle", "probe"];
const KIND_LABELS = { length: "Length", angle: "Angle", ellipse: "Ellipse", rectangle: "Rectangle", probe: "Probe" };
const COLOR = "#facc15";
const DRAFT = "#22d3ee";
const ELLIPSE_STEPS = 48;
const SLAB = 0.5 + 1e-3; // half a step, and a hair for rounding

function node(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (parent) parent.append(el);
  return el;
}

function fmt(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return Math.abs(value) >= 1000 ? String(Math.round(value)) : value.toFixed(digits);
}

/** The short text on the image: the main value only (the panel has the rest). */
function brief(a) {
  const v = a.values || {};
  if ((a.kind === "ellipse" || a.kind === "rectangle") && v.mean !== undefined) {
    return `${fmt(v.mean)}${v.unit ? ` ${v.unit}` : ""} ± ${fmt(v.sd)}`;
  }
  return describe(a);
}

/** The text a measurement shows in the panel. */
export function describe(a) {
  const v = a.values || {};
  const unit = v.unit ? ` ${v.unit}` : "";
  if (a.kind === "length") return v.length_mm !== undefined ? `${fmt(v.length_mm)} mm` : `${fmt(v.length_px)} px`;
  if (a.kind === "angle") return `${fmt(v.angle_deg)}°`;
  if (a.kind === "probe") return v.value !== undefined ? `${fmt(v.value)}${unit}` : "no value";
  const parts = [];
  if (v.mean !== undefined) parts.push(`mean ${fmt(v.mean)}${unit}`, `SD ${fmt(v.sd)}`, `min ${fmt(v.min)}`, `max ${fmt(v.max)}`);
  if (v.area_mm2 !== undefined) parts.push(`${fmt(v.area_mm2)} mm²`);
  return parts.join(" · ") || "no statistics";
}

/** The outline in the drawn image's pixels: what is drawn for each kind. */
function outline(kind, pixels) {
  if (kind === "rectangle") {
    const [[c0, r0], [c1, r1]] = pixels;
    return [[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]];
  }
  if (kind === "ellipse") {
    const [[c0, r0], [c1, r1]] = pixels;
    const cx = (c0 + c1) / 2;
    const cy = (r0 + r1) / 2;
    const out = [];
    for (let i = 0; i <= ELLIPSE_STEPS; i++) {
      const t = (2 * Math.PI * i) / ELLIPSE_STEPS;
      out.push([cx + ((c1 - c0) / 2) * Math.cos(t), cy + ((r1 - r0) / 2) * Math.sin(t)]);
    }
    return out;
  }
  return pixels.map((p) => [...p]);
}

export class Measurements {
  constructor(viewer) {
    this.viewer = viewer;
    // the page's series: measurements are made and shown on viewports that show it
    const config = viewer.config;
    this.home = { id: config.series.id, planes: config.series.planes, api: config.urls.api };
    this.base = `${this.home.api}annotations/`;
    this.items = [];
    this.draft = null; // {viewport, kind, pixels, pending}
    this.panel = document.getElementById("panel-measure");
    this.list = document.getElementById("measure-list");
    this.status = document.getElementById("measure-status");
    this.probeOut = document.getElementById("measure-probe");
    this.probeBusy = false;
    this.probeNext = null;
    this.layers = new WeakMap();
    document.getElementById("measure-tools")?.addEventListener("click", (event) => {
      const tool = event.target.closest("[data-tool]")?.dataset.tool;
      if (!tool) return;
      this.cancel();
      viewer.setTool(viewer.tool === tool ? "scroll" : tool);
      if (viewer.tool !== "scroll" && viewer.panel !== "measurements") viewer.showPanel("measurements");
    });
    this.list.addEventListener("click", (event) => this._listClick(event));
    this.load();
  }

  isTool(tool) {
    return MEASURE_TOOLS.includes(tool);
  }

  /** Whether a viewport shows the page's series (a layout of several series may show others). */
  isHome(viewport) {
    return !viewport.source || viewport.source.id === this.home.id;
  }

  // ---- data ------------------------------------------------------------------------------
  async load() {
    try {
      this.items = (await getJSON(this.base)).map((a) => this._prepare(a));
      this.say("");
    } catch (error) {
      this.say(error.message, true);
    }
    this.render();
  }

  /** Cache what drawing needs: the outline's world points (or drawn pixels for a stack). */
  _prepare(a) {
    const info = this.home.planes[a.plane];
    const shape = outline(a.kind, a.pixels);
    a.world = a.points && info?.origin ? shape.map(([col, row]) => planeWorld(info, a.index, row, col)) : null;
    a.anchors = a.points && info?.origin ? a.pixels.map(([col, row]) => planeWorld(info, a.index, row, col)) : null;
    a.shape = shape;
    return a;
  }

  async _send(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) throw new Error((data && data.detail) || `The server answered ${response.status}.`);
    return data;
  }

  /** Statistics or a value from the series' /roi or /probe endpoint (null and a reason if refused). */
  async _measured(viewport, kind, pixels) {
    const where = `${this.home.api}planes/${viewport.plane}/${viewport.index}/`;
    const r = (v) => String(round2(v));
    try {
      if (kind === "probe") {
        const [[x, y]] = pixels;
        const answer = await getJSON(`${where}probe?x=${r(x)}&y=${r(y)}`);
        if (answer.suv_problem) this.say(`Not SUV: ${answer.suv_problem}`);
        return { value: answer.value, unit: answer.unit };
      }
      const [[x0, y0], [x1, y1]] = pixels;
      const query = `shape=${kind}&x0=${r(Math.min(x0, x1))}&y0=${r(Math.min(y0, y1))}&x1=${r(Math.max(x0, x1))}&y1=${r(Math.max(y0, y1))}`;
      const s = await getJSON(`${where}roi?${query}`);
      if (s.suv_problem) this.say(`Not SUV: ${s.suv_problem}`);
      return { mean: s.mean, sd: s.sd, min: s.min, max: s.max, n: s.n, unit: s.unit };
    } catch (error) {
      this.say(`${KIND_LABELS[kind]}: ${error.message}`, true);
      return null;
    }
  }

  async save(viewport, kind, pixels) {
    this.say("");
    const body = { kind, plane: viewport.plane, index: viewport.index, pixels: pixels.map(([c, r]) => [round2(c), round2(r)]) };
    if (kind === "probe" || kind === "ellipse" || kind === "rectangle") {
      const values = await this._measured(viewport, kind, body.pixels);
      if (values) body.values = values;
    }
    try {
      const saved = await this._send("POST", this.base, body);
      this.items.push(this._prepare(saved));
    } catch (error) {
      this.say(error.message, true);
    }
    this.render();
  }

  async remove(id) {
    try {
      await this._send("DELETE", `${this.base}${id}/`);
      this.items = this.items.filter((a) => a.id !== id);
      this.say("");
    } catch (error) {
      this.say(error.message, true);
    }
    this.render();
  }

  say(text, bad = false) {
    this.status.textContent = text;
    this.status.classList.toggle("bad", bad);
  }

  // ---- pointer (hooks from viewport.js) ------------------------------------------------
  down(viewport, event) {
    if (!this.isHome(viewport)) {
      this.say("Measurements are made on the series this page opened: open that series to measure it.", true);
      return;
    }
    const { row, col } = viewport.clientToImage(event.clientX, event.clientY);
    const here = [col, row];
    const tool = this.viewer.tool;
    if (this.draft && this.draft.viewport === viewport && this.draft.kind === "angle" && this.draft.pixels.length === 3) {
      this.draft.pixels[2] = here;
    } else {
      this.draft = { viewport, kind: tool, pixels: tool === "probe" ? [here] : [here, here], index: viewport.index };
    }
    this.drawDraft();
  }

  move(viewport, event) {
    const d = this.draft;
    if (!d || d.viewport !== viewport) return;
    const { row, col } = viewport.clientToImage(event.clientX, event.clientY);
    d.pixels[d.pixels.length - 1] = [col, row];
    this.drawDraft();
  }

  up(viewport, event) {
    const d = this.draft;
    if (!d || d.viewport !== viewport) return;
    this.move(viewport, event);
    if (d.kind === "angle" && d.pixels.length === 2) {
      // first arm drawn; the pointer now places the second (a click ends it)
      d.pixels.push([...d.pixels[1]]);
      this.drawDraft();
      return;
    }
    const pixels = d.pixels.map((p) => this._clamp(viewport, p));
    this.draft = null;
    this.drawDraft(viewport);
    if (d.kind !== "probe" && d.kind !== "angle" && Math.hypot(pixels[1][0] - pixels[0][0], pixels[1][1] - pixels[0][1]) < 1) {
      this.say("Drag across the image to draw it.", true);
      return;
    }
    this.save(viewport, d.kind, pixels);
  }

  /** Pointer over the image with no button: the angle's second arm follows; the probe reads live. */
  hover(viewport, event) {
    if (!this.isHome(viewport)) return;
    const d = this.draft;
    if (d && d.viewport === viewport && d.kind === "angle" && d.pixels.length === 3) {
      this.move(viewport, event);
      return;
    }
    if (this.viewer.tool !== "probe") return;
    const { row, col } = viewport.clientToImage(event.clientX, event.clientY);
    if (col < -0.5 || row < -0.5 || col > viewport.size.w - 0.5 || row > viewport.size.h - 0.5) return;
    this.probeNext = { viewport, pixels: [[col, row]], index: viewport.index };
    if (!this.probeBusy) this._probeLoop();
  }

  /** One probe request at a time; the latest pointer position wins. */
  async _probeLoop() {
    this.probeBusy = true;
    while (this.probeNext) {
      const { viewport, pixels } = this.probeNext;
      this.probeNext = null;
      const value = await this._measured(viewport, "probe", pixels);
      if (value) {
        const [[col, row]] = pixels;
        this.probeOut.textContent = `${fmt(value.value)} ${value.unit || ""} at (${Math.round(col)}, ${Math.round(row)})`;
      }
    }
    this.probeBusy = false;
  }

  cancel() {
    const viewport = this.draft?.viewport;
    this.draft = null;
    if (viewport) this.drawDraft(viewport);
  }

  _clamp(viewport, [col, row]) {
    const w = viewport.size.w;
    const h = viewport.size.h;
    return [Math.min(w - 0.5, Math.max(-0.5, col)), Math.min(h - 0.5, Math.max(-0.5, row))];
  }

  // ---- drawing ---------------------------------------------------------------------------
  _layer(viewport) {
    let layer = this.layers.get(viewport);
    if (!layer || !layer.svg.isConnected) {
      const svg = node("svg", { class: "vp-measure", preserveAspectRatio: "none" });
      viewport.stage.append(svg);
      layer = { svg, saved: node("g", {}, svg), draft: node("g", {}, svg) };
      this.layers.set(viewport, layer);
    }
    layer.svg.setAttribute("viewBox", `0 0 ${viewport.size.w} ${viewport.size.h}`);
    return layer;
  }

  /** Outline of ``a`` in ``viewport``'s current image, in its pixels, or null if it is not there. */
  project(a, viewport) {
    if (!this.isHome(viewport)) return null;
    if (!a.world) {
      return a.plane === viewport.plane && a.index === viewport.index ? { shape: a.shape, anchors: a.pixels } : null;
    }
    const info = viewport.info;
    if (!info.origin) return null;
    for (const world of a.anchors) {
      if (Math.abs(worldToPlane(info, world).index - viewport.index) > SLAB) return null;
    }
    const toPixels = (world) => {
      const p = worldToPlane(info, world);
      return [p.col, p.row];
    };
    return { shape: a.world.map(toPixels), anchors: a.anchors.map(toPixels) };
  }

  draw(viewport) {
    const layer = this._layer(viewport);
    layer.saved.replaceChildren();
    for (const a of this.items) {
      const where = this.project(a, viewport);
      if (where) this._shape(layer.saved, a.kind, where.shape, where.anchors, brief(a), COLOR, a.id);
    }
  }

  drawAll() {
    for (const viewport of this.viewer.viewports) this.draw(viewport);
  }

  drawDraft(viewport = this.draft?.viewport) {
    if (!viewport) return;
    const layer = this._layer(viewport);
    layer.draft.replaceChildren();
    const d = this.draft;
    if (!d || d.viewport !== viewport) return;
    this._shape(layer.draft, d.kind, outline(d.kind, d.pixels), d.pixels, "", DRAFT);
  }

  _shape(group, kind, shape, anchors, text, color, id) {
    const g = node("g", { class: `m m-${kind}`, stroke: color, fill: "none" }, group);
    if (id !== undefined) g.dataset.id = String(id);
    const at = (p) => `${p[0] + 0.5},${p[1] + 0.5}`;
    if (kind === "probe") {
      const [x, y] = anchors[0];
      node("circle", { cx: x + 0.5, cy: y + 0.5, r: 3 }, g);
    } else {
      node("polyline", { points: shape.map(at).join(" ") }, g);
      for (const p of anchors) node("circle", { cx: p[0] + 0.5, cy: p[1] + 0.5, r: 2 }, g);
    }
    if (text) {
      const [x, y] = anchors[anchors.length - 1];
      const label = node("text", { x: x + 6, y: y - 6, fill: color, stroke: "none" }, g);
      label.textContent = text;
    }
  }

  // ---- panel -----------------------------------------------------------------------------
  render() {
    this.list.replaceChildren();
    for (const a of this.items) {
      const li = document.createElement("li");
      li.dataset.id = String(a.id);
      const go = document.createElement("button");
      go.type = "button";
      go.className = "m-go";
      go.title = "Show this image";
      const kind = document.createElement("b");
      kind.textContent = KIND_LABELS[a.kind] || a.kind;
      const value = document.createElement("span");
      value.className = "m-value";
      value.textContent = describe(a);
      const where = document.createElement("small");
      where.className = "muted";
      where.textContent = `${PLANE_LABELS[a.plane] || a.plane} · image ${a.index + 1}${a.label ? ` · ${a.label}` : ""}`;
      go.append(kind, " ", value, document.createElement("br"), where);
      const name = document.createElement("button");
      name.type = "button";
      name.className = "btn small m-label";
      name.textContent = "Label";
      name.setAttribute("aria-label", `Label ${KIND_LABELS[a.kind] || a.kind} ${describe(a)}`);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn small m-delete";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete ${KIND_LABELS[a.kind] || a.kind} ${describe(a)}`);
      li.append(go, name, remove);
      this.list.append(li);
    }
    const empty = document.getElementById("measure-empty");
    if (empty) empty.hidden = this.items.length > 0;
    this.drawAll();
  }

  _listClick(event) {
    const li = event.target.closest("li[data-id]");
    if (!li) return;
    const id = Number(li.dataset.id);
    if (event.target.closest(".m-delete")) {
      this.remove(id);
      return;
    }
    if (event.target.closest(".m-label")) {
      this.editLabel(li, id);
      return;
    }
    if (event.target.closest(".m-label-input")) return;
    const a = this.items.find((item) => item.id === id);
    if (a) this.goTo(a);
  }

  /** An input in place of the item's text: Enter saves the label, Escape leaves it. */
  editLabel(li, id) {
    const a = this.items.find((item) => item.id === id);
    if (!a || li.querySelector(".m-label-input")) return;
    const input = document.createElement("input");
    input.className = "m-label-input";
    input.maxLength = 128;
    input.value = a.label || "";
    input.setAttribute("aria-label", "Label");
    li.querySelector(".m-go").replaceWith(input);
    input.focus();
    input.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.render();
      } else if (event.key === "Enter") {
        try {
          const saved = await this._send("PATCH", `${this.base}${id}/`, { label: input.value });
          a.label = saved.label;
          this.say("");
        } catch (error) {
          this.say(error.message, true);
        }
        this.render();
      }
    });
  }

  /** Show the image a measurement was drawn on. */
  goTo(a) {
    const viewer = this.viewer;
    let viewport = viewer.viewports.find((v) => v.plane === a.plane && this.isHome(v));
    if (!viewport && viewer.layout === "slices" && this.home.planes[a.plane]) {
      viewer.setSinglePlane(a.plane);
      viewport = viewer.viewports[0];
    }
    if (!viewport) return;
    viewer.activate(viewport);
    viewport.setIndex(a.index, "measure");
  }
}

function round2(value) {
  return Math.round(value * 100) / 100;
}
