// Tag browser and "current image" metadata: the DICOM header of the stored file behind the
// image in the active viewport, searchable by tag number, keyword, name or value.
import { getJSON } from "../api.js";

const SHOWN_IN_METADATA = [
  "InstanceNumber",
  "SOPInstanceUID",
  "ImagePositionPatient",
  "ImageOrientationPatient",
  "SliceLocation",
  "SliceThickness",
  "PixelSpacing",
  "AcquisitionDate",
  "AcquisitionTime",
  "ContentTime",
  "KVP",
  "XRayTubeCurrent",
  "RepetitionTime",
  "EchoTime",
  "TransferSyntaxUID",
];

export class HeaderPanel {
  constructor(viewer, { tagsPanel, metaList, search, source, table }) {
    this.viewer = viewer;
    this.tagsPanel = tagsPanel;
    this.metaList = metaList;
    this.search = search;
    this.source = source;
    this.tbody = table.querySelector("tbody");
    this.rows = [];
    this.key = null;
    this.controller = null;
    search.addEventListener("input", () => this.render());
  }

  /** Fetch the header of the active image if a panel that shows it is open (debounced). */
  refresh(force = false) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._load(force), force ? 0 : 180);
  }

  async _load(force) {
    const query = this.viewer.headerQuery();
    if (!query || !this.viewer.urls.tags) return; // no tag browser through a de-identified link
    const key = `${this.viewer.urls.tags}?${new URLSearchParams(query)}`; // the tags URL names the series
    if (key === this.key && !force) {
      this.viewer.describeImage(this.info);
      return;
    }
    this.key = key;
    this.controller?.abort();
    this.controller = new AbortController();
    this.source.textContent = "Loading the header…";
    let body;
    try {
      body = await getJSON(key, { signal: this.controller.signal });
    } catch (error) {
      if (error.name === "AbortError") return;
      this.source.textContent = error.message;
      this.key = null;
      return;
    }
    this.rows = body.tags;
    this.info = body;
    this.source.textContent = this._describeSource(body, query.plane);
    this.render();
    this.viewer.describeImage(body);
  }

  _describeSource(body, plane) {
    const number = body.instance.number ?? "?";
    const frame = body.instance.frames > 1 ? `, frame ${body.frame + 1} of ${body.instance.frames}` : "";
    if (body.reconstruction) {
      return (
        `This ${plane} image is a reconstruction from the acquired slices. ` +
        `Tags of the nearest acquired image (instance ${number}${frame}, ${body.distance_mm} mm away).`
      );
    }
    return `Instance ${number}${frame}${body.truncated ? " · long sequences shortened" : ""}`;
  }

  metadataValues() {
    const values = new Map();
    for (const row of this.rows) if (row.depth === 0 && SHOWN_IN_METADATA.includes(row.keyword)) values.set(row.keyword, row);
    return SHOWN_IN_METADATA.filter((k) => values.has(k)).map((k) => values.get(k));
  }

  /** Rows matching the search, with the sequences and items that contain them. */
  render() {
    const words = this.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const normalise = (text) => text.toLowerCase().replace(/[(),\s]/g, "");
    const matches = (row) =>
      words.every((word) => {
        const bare = normalise(word);
        return (
          (bare && normalise(row.tag).includes(bare)) ||
          row.keyword.toLowerCase().includes(word) ||
          row.name.toLowerCase().includes(word) ||
          row.value.toLowerCase().includes(word)
        );
      });
    const shown = new Set();
    this.rows.forEach((row, index) => {
      if (words.length && !matches(row)) return;
      shown.add(index);
      let depth = row.depth;
      for (let i = index - 1; i >= 0 && depth > 0; i--) {
        if (this.rows[i].depth < depth) {
          shown.add(i);
          depth = this.rows[i].depth;
        }
      }
    });
    const fragment = document.createDocumentFragment();
    let count = 0;
    this.rows.forEach((row, index) => {
      if (!shown.has(index)) return;
      const tr = document.createElement("tr");
      if (row.tag === "FFFE,E000") tr.className = "item";
      const cells = [`(${row.tag})`, row.name || row.keyword, row.vr, row.value];
      cells.forEach((text, column) => {
        const td = document.createElement("td");
        if (column === 1) {
          td.style.paddingLeft = `${0.5 + row.depth * 0.8}rem`;
          if (row.keyword) td.title = row.keyword;
        }
        highlight(td, text, column === 2 ? [] : words);
        tr.append(td);
      });
      tr.dataset.keyword = row.keyword;
      fragment.append(tr);
      count += 1;
    });
    this.tbody.replaceChildren(fragment);
    this.tagsPanel.dataset.count = String(count);
  }
}

function highlight(td, text, words) {
  const lower = text.toLowerCase();
  const hit = words.map((word) => ({ word, at: lower.indexOf(word) })).find((h) => h.at >= 0);
  if (!hit) {
    td.textContent = text;
    return;
  }
  const mark = document.createElement("mark");
  mark.textContent = text.slice(hit.at, hit.at + hit.word.length);
  td.append(text.slice(0, hit.at), mark, text.slice(hit.at + hit.word.length));
}
