// Plane geometry in DICOM patient coordinates (LPS millimetres: +x left, +y posterior, +z head).
//
// A plane from /api/series/<id>/ is a grid: origin is the centre of pixel (0, 0) of image 0; one
// column is pixel_mm along x_dir, one row pixel_mm along y_dir, one image step_mm along step_dir
// (studies/imaging/planes.py). The three directions are orthonormal, so a world point maps back
// to (index, row, col) with dot products.

export const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const neg = (a) => [-a[0], -a[1], -a[2]];

/** World point (mm) of fractional image `index`, pixel `row`, `col` (pixel centres are integers). */
export function planeWorld(plane, index, row, col) {
  const out = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    out[i] =
      plane.origin[i] +
      col * plane.pixel_mm * plane.x_dir[i] +
      row * plane.pixel_mm * plane.y_dir[i] +
      index * plane.step_mm * plane.step_dir[i];
  }
  return out;
}

/** Fractional (index, row, col) of a world point in a plane's grid. */
export function worldToPlane(plane, world) {
  const d = sub(world, plane.origin);
  return {
    index: dot(d, plane.step_dir) / plane.step_mm,
    row: dot(d, plane.y_dir) / plane.pixel_mm,
    col: dot(d, plane.x_dir) / plane.pixel_mm,
  };
}

export function clampIndex(value, count) {
  return Math.min(count - 1, Math.max(0, Math.round(value)));
}

/** The centre of the volume: the middle of every plane. */
export function volumeCentre(plane) {
  return planeWorld(plane, (plane.count - 1) / 2, (plane.height - 1) / 2, (plane.width - 1) / 2);
}

// Orientation letters: the patient direction a vector points to. LPS: -x is the patient's
// right, +y posterior, +z superior.
const LETTERS = [
  ["R", "L"],
  ["A", "P"],
  ["I", "S"],
];

/** One or two letters for a direction, strongest component first ("L", "LA" for an oblique one). */
export function directionLetters(vector, secondary = 0.4) {
  const parts = [0, 1, 2]
    .map((axis) => ({ axis, size: Math.abs(vector[axis]), positive: vector[axis] > 0 }))
    .sort((a, b) => b.size - a.size);
  const letters = [parts[0]];
  if (parts[1].size >= secondary) letters.push(parts[1]);
  return letters
    .filter((part) => part.size > 1e-6)
    .map((part) => LETTERS[part.axis][part.positive ? 1 : 0])
    .join("");
}

/** Letters at the four edges of an image whose columns run along xDir and rows along yDir. */
export function edgeLetters(xDir, yDir) {
  return {
    left: directionLetters(neg(xDir)),
    right: directionLetters(xDir),
    top: directionLetters(neg(yDir)),
    bottom: directionLetters(yDir),
  };
}

/** Row and column directions of an image from ImageOrientationPatient (6 cosines), or null. */
export function orientationDirs(cosines) {
  if (!Array.isArray(cosines) || cosines.length !== 6) return null;
  return { xDir: cosines.slice(0, 3), yDir: cosines.slice(3, 6) };
}

/**
 * Where image `indexR` of plane R cuts image `indexQ` of plane Q: a segment in Q's image
 * coordinates (CSS pixels of the image, pixel centres at +0.5), or null if the planes are parallel.
 */
export function intersection(planeQ, indexQ, planeR, indexR) {
  const normal = planeR.step_dir;
  const a = planeQ.pixel_mm * dot(planeQ.x_dir, normal); // per column
  const b = planeQ.pixel_mm * dot(planeQ.y_dir, normal); // per row
  const c = dot(sub(planeWorld(planeQ, indexQ, 0, 0), planeR.origin), normal) - indexR * planeR.step_mm;
  const w = planeQ.width;
  const h = planeQ.height;
  if (Math.abs(a) < 1e-9 && Math.abs(b) < 1e-9) return null;
  // a*col + b*row + c = 0, drawn edge to edge of the image
  if (Math.abs(b) >= Math.abs(a)) {
    const rowAt = (col) => -(a * col + c) / b;
    return { x1: 0, y1: rowAt(-0.5) + 0.5, x2: w, y2: rowAt(w - 0.5) + 0.5 };
  }
  const colAt = (row) => -(b * row + c) / a;
  return { x1: colAt(-0.5) + 0.5, y1: 0, x2: colAt(h - 0.5) + 0.5, y2: h };
}

/** The axis label and value of an image's position along its plane's normal ("z", -542.8). */
export function slicePosition(plane, index) {
  const centre = planeWorld(plane, index, (plane.height - 1) / 2, (plane.width - 1) / 2);
  const axis = [0, 1, 2].reduce((best, i) => (Math.abs(plane.step_dir[i]) > Math.abs(plane.step_dir[best]) ? i : best), 0);
  return { axis: "xyz"[axis], mm: centre[axis] };
}
