// One series as the viewer shows it: its config (viewer/presenters.py series_config, embedded in the
// page for the page's series and fetched from /series/<id>/config/ for others a layout shows) and
// its signed image URLs, renewed before they expire (each series its own).
import { getJSON } from "../api.js";

export const LABELS = { axial: "Axial", coronal: "Coronal", sagittal: "Sagittal", acquired: "Acquired", stack: "Stack" };

export class SeriesSource {
  constructor(config) {
    this.config = config;
    this.series = config.series;
    this.id = this.series.id;
    this.planes = this.series.planes;
    this.version = this.series.render_version;
    this.urls = config.urls;
    this.overlay = config.overlay;
    this.presets = config.presets || [];
    this.isColor = config.isColor;
    this.inverted = config.inverted;
    this.isVolume = Boolean(this.series.is_volume && this.planes.axial);
    this.nativePlane = config.nativePlane in this.planes ? config.nativePlane : Object.keys(this.planes)[0];
    this.defaultWindow = this.series.window ? { ...this.series.window } : null;
    this.frameOfReference = this.series.frame_of_reference_uid || "";
    this.label = this.overlay.seriesLabel || this.series.modality || `Series ${this.id}`;
    this.images = config.images; // signed URL templates of the planes, renewed before they expire
    this.imagesAt = performance.now();
    this.renewing = null;
  }

  /** Do this series and `other` share patient coordinates (one Frame of Reference)? */
  sharesFrameWith(other) {
    return other === this || Boolean(this.frameOfReference && this.frameOfReference === other.frameOfReference);
  }

  planeLabel(plane) {
    const label = LABELS[plane] || plane;
    if (!this.isVolume) return label;
    if (plane === "acquired") return `${label} (as stored, oblique)`;
    if (plane !== this.config.nativePlane) return `${label} (reconstruction)`;
    return this.config.nativeExact ? label : `${label} (resampled)`;
  }

  /** The URL of `plane/index` now (the key's query, a window, is kept). */
  url(plane, index, query) {
    const url = this.images.planes[plane].replace("{index}", index);
    return query ? `${url}?${query}` : url;
  }

  /** Seconds the current image URLs stay valid (by the server's clock, counted here). */
  imageUrlsLeft() {
    const elapsed = (performance.now() - this.imagesAt) / 1000;
    return this.images.expires - this.images.issued - elapsed;
  }

  /** New signed URLs from the server when these are about to expire (or `force`). */
  renewImageUrls(force) {
    if (!force && this.imageUrlsLeft() > 30) return Promise.resolve();
    if (!this.renewing) {
      this.renewing = getJSON(this.urls.status)
        .then((status) => this.setImages(status.images))
        .finally(() => {
          this.renewing = null;
        });
    }
    return this.renewing;
  }

  setImages(images) {
    if (!images) return;
    this.images = images;
    this.imagesAt = performance.now();
  }
}

/** The config of series `id` (404 for a series this user may not see: the error says so). */
export async function fetchSeriesConfig(template, id) {
  try {
    return await getJSON(template.replace("{id}", String(id)));
  } catch (error) {
    if (error.status === 404) throw Object.assign(new Error("it does not exist or is not shared with you."), { refused: true });
    throw error;
  }
}
