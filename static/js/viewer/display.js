// Display controls of the viewer: invert, colour maps with a colour bar, slab projections,
// saving a viewport as PNG, the fps bounds, and the collapsible toolbar / series picker on phones.
//
// Invert and colour maps are applied here, in the browser, on the grey PNG the server rendered:
// one 256-entry table per channel (an SVG feComponentTransfer filter on the <img>, which the
// compositor applies at display rate), so changing them costs no request. The same table also
// carries the window preview while the window is dragged, and colours the PNG saved from a
// viewport, so what is saved is what is seen. The display state lives on each Viewport
// (`viewport.display`): every viewport has its own colour map, invert and slab.

const STORE = "dicomviewer.colormap.";
export const SLAB_MODES = { mip: "MIP", minip: "MinIP", avg: "Average" };
export const SLAB_MM = { min: 1, max: 200 };
export const FPS = { min: 1, max: 60 };

// Piecewise-linear ramps per channel: [[input 0..1, output 0..1], ...].
export const COLORMAPS = {
  grey: { label: "Grey" },
  hotiron: {
    label: "Hot iron",
    r: [[0, 0], [0.5, 1], [1, 1]],
    g: [[0, 0], [0.5, 0], [1, 1]],
    b: [[0, 0], [0.75, 0], [1, 1]],
  },
  rainbow: {
    label: "Rainbow (jet)",
    r: [[0, 0], [0.35, 0], [0.66, 1], [0.89, 1], [1, 0.5]],
    g: [[0, 0], [0.125, 0], [0.375, 1], [0.64, 1], [0.91, 0], [1, 0]],
    b: [[0, 0.5], [0.11, 1], [0.34, 1], [0.65, 0], [1, 0]],
  },
};

function ramp(points, x) {
  if (!points) return x;
  for (let i = 1; i < points.length; i++) {
    const [x1, y1] = points[i];
    if (x <= x1) {
      const [x0, y0] = points[i - 1];
      return x1 === x0 ? y1 : y0 + ((x - x0) * (y1 - y0)) / (x1 - x0);
    }
  }
  return points[points.length - 1][1];
}

const clamp01 = (x) => Math.min(1, Math.max(0, x));
const tables = new Map();

/** RGB (0..255) of each of 256 grey levels under a colour map. */
export function colormapTable(name) {
  if (!tables.has(name)) {
    const map = COLORMAPS[name] || COLORMAPS.grey;
    const table = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      const x = i / 255;
      table[i * 3] = Math.round(255 * ramp(map.r, x));
      table[i * 3 + 1] = Math.round(255 * ramp(map.g, x));
      table[i * 3 + 2] = Math.round(255 * ramp(map.b, x));
    }
    tables.set(name, table);
  }
  return tables.get(name);
}

/** Display settings of one viewport. */
export class DisplayState {
  /** `source`: the viewport's series (series.js SeriesSource). */
  constructor(source) {
    this.invert = false;
    this.colormap = source.isColor ? "grey" : rememberedColormap(source.overlay?.modality);
    this.slabMode = "";
    this.slabMm = 10;
  }
}

function rememberedColormap(modality) {
  try {
    const name = localStorage.getItem(STORE + (modality || ""));
    return name in COLORMAPS ? name : "grey";
  } catch {
    return "grey";
  }
}

function rememberColormap(modality, name) {
  try {
    localStorage.setItem(STORE + (modality || ""), name);
  } catch {
    // private mode: the choice lasts as long as the page
  }
}

/** Can this viewport show slabs: a plane of a volume (images a step apart, `step_mm`)? */
export function slabbable(viewport) {
  return Boolean(viewport.source.isVolume && viewport.info.step_mm);
}

/** The thickest slab of a viewport's plane (mm): its extent, at most SLAB_MM.max. */
export function slabMax(viewport) {
  const extent = Math.floor(viewport.info.count * viewport.info.step_mm);
  return Math.max(SLAB_MM.min, Math.min(SLAB_MM.max, extent));
}

/** `mode=mip&slab=10` for a viewport's image URLs, or "" (no slab, or not a volume plane). */
export function slabQuery(viewport) {
  const display = viewport?.display;
  if (!display?.slabMode || !slabbable(viewport)) return "";
  return `mode=${display.slabMode}&slab=${display.slabMm}`;
}

/** The grey level (0..1) shown for a value at fraction `n` of the window, before the colour map. */
function shownGrey(n, monochrome1, invert) {
  let g = clamp01(n);
  if (monochrome1) g = 1 - g;
  return invert ? 1 - g : g;
}

/**
 * The table (256 x RGB) from the grey of the image on screen to what is shown: the window it
 * was rendered at stretched to the current one (preview while dragging), invert, colour map.
 * `identity` when it changes nothing (then no filter at all).
 */
export function displayTable(viewport) {
  const source = viewport.source;
  const display = viewport.display;
  const shown = viewport.displayed?.window;
  const wanted = viewport.window;
  const stretch = shown && wanted && (shown.center !== wanted.center || shown.width !== wanted.width);
  const identity = !stretch && !display.invert && display.colormap === "grey";
  const colours = colormapTable(source.isColor ? "grey" : display.colormap);
  const mono1 = Boolean(source.inverted);
  const slope = stretch ? shown.width / wanted.width : 1;
  const intercept = stretch ? (shown.center - wanted.center) / wanted.width + 0.5 - slope / 2 : 0;
  const table = new Uint8ClampedArray(256 * 3);
  for (let p = 0; p < 256; p++) {
    let n = p / 255;
    if (mono1) n = 1 - n; // back to "higher value, brighter"
    n = slope * n + intercept;
    const q = Math.round(255 * shownGrey(n, mono1, display.invert && !source.isColor));
    table[p * 3] = colours[q * 3];
    table[p * 3 + 1] = colours[q * 3 + 1];
    table[p * 3 + 2] = colours[q * 3 + 2];
  }
  return { table, identity };
}

/** The SVG filter of a viewport's image (built once, its tables set by `applyDisplay`). */
export function filterMarkup(id) {
  return `<filter id="wl-${id}" color-interpolation-filters="sRGB"><feComponentTransfer>
      <feFuncR type="table"/><feFuncG type="table"/><feFuncB type="table"/></feComponentTransfer></filter>`;
}

/** Colour the image on screen and update the colour bar: called whenever the image, the
 *  window or the display settings change. */
export function applyDisplay(viewport) {
  const { table, identity } = displayTable(viewport);
  if (identity) {
    viewport.img.style.filter = "";
  } else {
    viewport.funcs.forEach((func, channel) => {
      const values = [];
      for (let p = 0; p < 256; p++) values.push((table[p * 3 + channel] / 255).toFixed(4));
      const text = values.join(" ");
      // only when it changed: a new table makes the browser rebuild the filter
      if (func.getAttribute("tableValues") !== text) func.setAttribute("tableValues", text);
    });
    if (!viewport.img.style.filter) viewport.img.style.filter = `url(#wl-${viewport.id})`;
  }
  viewport.root.classList.toggle("inverted", viewport.display.invert);
  updateColourBar(viewport);
}

// ---- colour bar ---------------------------------------------------------------------------
export function buildColourBar(viewport, parent) {
  const bar = document.createElement("div");
  bar.className = "vp-colorbar";
  bar.hidden = true;
  const canvas = document.createElement("canvas");
  canvas.width = 1;
  canvas.height = 256;
  const ticks = document.createElement("div");
  ticks.className = "ticks";
  const unit = document.createElement("div");
  unit.className = "unit";
  bar.append(unit, canvas, ticks);
  parent.append(bar);
  viewport.colourBar = { bar, canvas, ticks, unit, drawn: "" };
}

/** Unit and factor of the values the bar is labelled in: SUV for a PET whose header allows it
 *  (`series.values.suv_factor`), otherwise the stored unit. */
export function valueUnit(config) {
  const values = config.series?.values;
  if (values && typeof values.suv_factor === "number") return { unit: "SUV", factor: values.suv_factor };
  if (values?.unit) return { unit: values.unit, factor: 1 };
  return { unit: config.series?.modality === "CT" || config.overlay?.modality === "CT" ? "HU" : "", factor: 1 };
}

function tickLabel(value, step) {
  const decimals = step >= 10 ? 0 : step >= 1 ? 1 : step >= 0.1 ? 2 : 3;
  return Number(value.toFixed(decimals)).toString();
}

/** Five ticks from the bottom (window low) to the top (window high), in the bar's unit. */
export function colourBarTicks(window, config) {
  if (!window) return [];
  const { factor } = valueUnit(config);
  const low = window.center - window.width / 2;
  const step = Math.abs((window.width / 4) * factor);
  return [0, 0.25, 0.5, 0.75, 1].map((at) => ({ at, label: tickLabel((low + at * window.width) * factor, step) }));
}

function updateColourBar(viewport) {
  const source = viewport.source;
  const parts = viewport.colourBar;
  if (!parts) return;
  const show = !source.isColor && viewport.display.colormap !== "grey";
  parts.bar.hidden = !show;
  if (!show) return;
  const key = `${viewport.display.colormap}/${viewport.display.invert}`;
  if (parts.drawn !== key) {
    const colours = colormapTable(viewport.display.colormap);
    const context = parts.canvas.getContext("2d");
    const pixels = context.createImageData(1, 256);
    for (let row = 0; row < 256; row++) {
      const q = Math.round(255 * shownGrey(1 - row / 255, source.inverted, viewport.display.invert)); // top: high values
      pixels.data.set([colours[q * 3], colours[q * 3 + 1], colours[q * 3 + 2], 255], row * 4);
    }
    context.putImageData(pixels, 0, 0);
    parts.drawn = key;
  }
  const { unit } = valueUnit(source.config);
  const problem = unit !== "SUV" && source.config.series?.values?.suv_problem;
  parts.unit.textContent = problem ? `${unit} (no SUV)` : unit;
  parts.unit.title = problem ? `Not in SUV: ${problem}` : "";
  parts.ticks.replaceChildren(
    ...colourBarTicks(viewport.window, source.config).map(({ at, label }) => {
      const tick = document.createElement("span");
      tick.textContent = label;
      tick.style.bottom = `${at * 100}%`;
      return tick;
    }),
  );
}

// ---- phones: keep overlays off the image ---------------------------------------------------
const narrow = () => window.matchMedia("(max-width: 700px)").matches;

/** Room (px) to leave around the fitted image so the overlays sit beside it, on phones. */
export function fitInsets(viewport) {
  const none = { left: 0, right: 0, top: 0, bottom: 0 };
  if (!narrow() || viewport.viewer.container.classList.contains("overlay-off")) return none;
  const canvas = viewport.canvas;
  const bottomOf = (node) => (node.textContent ? node.offsetTop + node.offsetHeight : 0);
  const fromBottom = (node) => (node.textContent ? canvas.clientHeight - node.offsetTop : 0);
  const widthOf = (node) => (node.textContent ? node.offsetWidth + 6 : 0);
  const { ov, letters } = viewport;
  const bar = viewport.colourBar;
  let barWidth = 0;
  if (bar && !bar.bar.hidden) {
    const right = canvas.getBoundingClientRect().right;
    const lefts = [bar.bar, ...bar.ticks.children].map((node) => node.getBoundingClientRect().left);
    barWidth = right - Math.min(...lefts) + 4;
  }
  const insets = {
    left: widthOf(letters.left) + 4,
    right: Math.max(widthOf(letters.right) + 4, barWidth),
    top: Math.max(bottomOf(ov.tl), bottomOf(ov.tr), bottomOf(letters.top)) + 2,
    bottom: Math.max(fromBottom(ov.bl), fromBottom(ov.br), fromBottom(letters.bottom)) + 2,
  };
  // never give away more than half the viewport
  const scaleDown = (a, b, room) => (a + b > room / 2 ? room / 2 / (a + b) : 1);
  const h = scaleDown(insets.left, insets.right, canvas.clientWidth);
  const v = scaleDown(insets.top, insets.bottom, canvas.clientHeight);
  return { left: insets.left * h, right: insets.right * h, top: insets.top * v, bottom: insets.bottom * v };
}

// ---- save as PNG ---------------------------------------------------------------------------
const SVG_STYLE = ["stroke", "stroke-width", "stroke-dasharray", "stroke-opacity", "fill", "fill-opacity", "opacity", "font-size", "font-family", "font-weight"];

async function svgImage(svg, width, height) {
  const copy = svg.cloneNode(true);
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.setAttribute("width", String(width));
  copy.setAttribute("height", String(height));
  const originals = svg.querySelectorAll("*");
  copy.querySelectorAll("*").forEach((node, i) => {
    const style = getComputedStyle(originals[i]);
    for (const name of SVG_STYLE) node.style.setProperty(name, style.getPropertyValue(name));
  });
  const blob = new Blob([new XMLSerializer().serializeToString(copy)], { type: "image/svg+xml" });
  const url = URL.createObjectURL(blob);
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    return image;
  } finally {
    URL.revokeObjectURL(url);
  }
}

function drawText(context, lines, x, y, align, baseline, size) {
  context.textAlign = align;
  context.textBaseline = baseline;
  const ordered = baseline === "bottom" ? [...lines].reverse() : lines;
  ordered.forEach((line, i) => {
    const at = baseline === "bottom" ? y - i * size * 1.3 : y + i * size * 1.3;
    context.strokeText(line, x, at);
    context.fillText(line, x, at);
  });
}

/**
 * The viewport's image as PNG bytes, at the image's own resolution (the whole image, not the
 * zoomed/panned part on screen) with the current window, invert and colour map; with overlays,
 * the stage's SVG (crosshair lines, measurements), the corner texts, orientation letters and the
 * colour bar are drawn on it.
 */
export async function viewportPng(viewport, withOverlays) {
  const { w, h } = viewport.size;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const context = canvas.getContext("2d");
  context.drawImage(viewport.img, 0, 0, w, h);
  const { table, identity } = displayTable(viewport);
  if (!identity) {
    const pixels = context.getImageData(0, 0, w, h);
    const data = pixels.data;
    for (let i = 0; i < data.length; i += 4) {
      const p = data[i] * 3; // grey: R = G = B
      data[i] = table[p];
      data[i + 1] = table[p + 1];
      data[i + 2] = table[p + 2];
    }
    context.putImageData(pixels, 0, 0);
  }
  if (withOverlays) {
    if (viewport.svg.childElementCount) context.drawImage(await svgImage(viewport.svg, w, h), 0, 0, w, h);
    const size = Math.max(9, Math.round(Math.min(w, h) / 40));
    const margin = Math.round(size * 0.6);
    context.font = `${size}px system-ui, sans-serif`;
    context.lineWidth = Math.max(2, size / 5);
    context.strokeStyle = "rgba(0, 0, 0, 0.85)";
    context.lineJoin = "round";
    context.fillStyle = "#f4f7ff";
    const text = (node) => node.innerText.split("\n").filter(Boolean);
    drawText(context, text(viewport.ov.tl), margin, margin, "left", "top", size);
    drawText(context, text(viewport.ov.tr), w - margin, margin, "right", "top", size);
    drawText(context, text(viewport.ov.bl), margin, h - margin, "left", "bottom", size);
    drawText(context, text(viewport.ov.br), w - margin, h - margin, "right", "bottom", size);
    context.fillStyle = "#ffd166";
    context.font = `bold ${size}px system-ui, sans-serif`;
    const l = viewport.letters;
    drawText(context, [l.top.textContent], w / 2, margin, "center", "top", size);
    drawText(context, [l.bottom.textContent], w / 2, h - margin, "center", "bottom", size);
    drawText(context, [l.left.textContent], margin, h / 2, "left", "middle", size);
    drawText(context, [l.right.textContent], w - margin, h / 2, "right", "middle", size);
    const bar = viewport.colourBar;
    if (bar && !bar.bar.hidden) {
      const barW = Math.max(6, Math.round(w / 60));
      const x = w - margin * 3 - barW - size;
      const top = h * 0.25;
      context.drawImage(bar.canvas, x, top, barW, h * 0.5);
      context.fillStyle = "#f4f7ff";
      context.font = `${size}px system-ui, sans-serif`;
      for (const span of bar.ticks.children) {
        const at = parseFloat(span.style.bottom) / 100;
        drawText(context, [span.textContent], x - margin / 2, top + h * 0.5 * (1 - at), "right", "middle", size);
      }
    }
  }
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// ---- toolbar controls ---------------------------------------------------------------------
export class DisplayControls {
  constructor(viewer) {
    this.viewer = viewer;
    this.invertButton = document.getElementById("invert");
    this.colormap = document.getElementById("colormap");
    this.slabMode = document.getElementById("slab-mode");
    this.slabMm = document.getElementById("slab-mm");
    this.note = document.getElementById("toolbar-note");
    for (const [name, map] of Object.entries(COLORMAPS)) this.colormap.append(new Option(map.label, name));
    this.invertButton.addEventListener("click", () => this.toggleInvert());
    this.colormap.addEventListener("change", () => this.setColormap(this.colormap.value));
    this.slabMode.addEventListener("change", () => this.setSlab());
    this.slabMm.addEventListener("change", () => this.setSlab());
    document.getElementById("save-png").addEventListener("click", () => this.savePng());
    this._bindFps();
    this._bindPhone();
  }

  get viewport() {
    return this.viewer.active;
  }

  /** Show the active viewport's settings in the toolbar. */
  sync() {
    const viewport = this.viewport;
    if (!viewport) return;
    const display = viewport.display;
    this.colormap.disabled = viewport.source.isColor;
    this.invertButton.disabled = viewport.source.isColor;
    this.invertButton.setAttribute("aria-pressed", String(display.invert));
    this.colormap.value = display.colormap;
    const can = slabbable(viewport);
    this.slabMode.disabled = !can;
    this.slabMm.disabled = !can || !display.slabMode;
    this.slabMode.title = can ? "Slab projection over a thickness (mm)" : "Slabs need a plane of a volume";
    this.slabMm.max = String(can ? slabMax(viewport) : SLAB_MM.max);
    this.slabMm.title = `Slab thickness, ${SLAB_MM.min}–${this.slabMm.max} mm`;
    this.slabMode.value = display.slabMode;
    this.slabMm.value = String(display.slabMm);
  }

  toggleInvert() {
    const viewport = this.viewport;
    if (!viewport || viewport.source.isColor) return;
    viewport.display.invert = !viewport.display.invert;
    viewport.preview();
    this.sync();
  }

  setColormap(name) {
    const viewport = this.viewport;
    if (!viewport || viewport.source.isColor || !(name in COLORMAPS)) return;
    viewport.display.colormap = name;
    rememberColormap(viewport.source.overlay?.modality, name);
    viewport.preview();
    if (viewport.view.fitted) viewport.fit(); // the colour bar may need room on phones
    this.sync();
  }

  nextColormap() {
    const names = Object.keys(COLORMAPS);
    const current = this.viewport?.display.colormap;
    this.setColormap(names[(names.indexOf(current) + 1) % names.length]);
  }

  setSlab() {
    const viewport = this.viewport;
    if (!viewport) return;
    const mode = this.slabMode.value in SLAB_MODES ? this.slabMode.value : "";
    const bounds = { min: SLAB_MM.min, max: slabMax(viewport) }; // the server refuses slabs thicker than the plane
    const mm = clampField(this.slabMm, bounds, viewport.display.slabMm, "Slab thickness", "mm", (text) => this.say(text));
    viewport.display.slabMode = mode;
    viewport.display.slabMm = mm;
    this.sync();
    viewport.request();
  }

  async savePng() {
    const viewport = this.viewport;
    if (!viewport?.displayed) return;
    const withOverlays = document.getElementById("save-overlays").checked;
    const blob = await viewportPng(viewport, withOverlays);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    // no patient data in the file name
    link.download = `series-${viewport.source.id}-${viewport.plane}-${viewport.index + 1}${withOverlays ? "-overlays" : ""}.png`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }

  say(text) {
    this.note.textContent = text;
    this.note.hidden = false;
    clearTimeout(this.noteTimer);
    this.noteTimer = setTimeout(() => {
      this.note.hidden = true;
    }, 5000);
  }

  _bindFps() {
    const fps = document.getElementById("fps");
    fps.addEventListener("change", () => clampField(fps, FPS, 12, "Cine speed", "fps", (text) => this.say(text)));
  }

  _bindPhone() {
    const toolbar = document.querySelector(".toolbar");
    const toggle = document.getElementById("toolbar-toggle");
    toggle.addEventListener("click", () => {
      const open = !toolbar.classList.contains("open");
      toolbar.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", String(open));
    });
    document.getElementById("series-picker")?.addEventListener("change", (event) => {
      if (event.target.value) location.assign(event.target.value);
    });
  }
}

/** Keep a number field within bounds; say so when a value was changed. Returns the value. */
function clampField(input, { min, max }, fallback, name, unit, say) {
  const value = Number(input.value);
  let kept = Number.isFinite(value) && input.value !== "" ? Math.round(value) : fallback;
  kept = Math.min(max, Math.max(min, kept));
  if (String(kept) !== input.value) {
    say(`${name} is ${min}–${max} ${unit}: set to ${kept} ${unit}.`);
    input.value = String(kept);
  }
  return kept;
}
