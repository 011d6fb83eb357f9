// Reads our DICOMweb answers with the access pattern of the unmodified OHIF v3 (written for this
// test from reading OHIF's sources, not taken from them). stdin: {"studies": [QIDO study answers],
// "series": [QIDO series answers]}. stdout: the study list rows; a TypeError (exit 1) where OHIF
// would throw.
//   study list:  extensions/default/src/DicomWebDataSource/qido.js processResults, which uses
//                platform/core/src/DICOMWeb/getString.js, getName.js (guarded) and getModalities.js
//                (reads ModalitiesInStudy.Value without a guard);
//   series:      qido.js processSeriesResults (getString only).
'use strict';

const answers = JSON.parse(require('fs').readFileSync(0, 'utf8'));

const joined = el => (el && el.Value && el.Value.length ? el.Value.join('\\') : undefined);
const alphabetic = el =>
  el && el.Value && el.Value.length ? el.Value[0].Alphabetic || el.Value[0] : undefined;

function modalityList(seriesModality, inStudy) {
  if (!seriesModality && !inStudy) return {};
  const merged = seriesModality || { vr: 'CS', Value: [] };
  merged.Value = merged.Value || [];
  if (!inStudy) return merged;
  if (!merged.vr || merged.vr !== inStudy.vr) return inStudy;
  for (let i = 0; i < inStudy.Value.length; i++) {  // the unguarded read
    if (merged.Value.indexOf(inStudy.Value[i]) < 0) merged.Value.push(inStudy.Value[i]);
  }
  return merged;
}

const rows = [];
(answers.studies || []).forEach(s =>
  rows.push({
    studyInstanceUid: joined(s['0020000D']),
    date: joined(s['00080020']) || '',
    accession: joined(s['00080050']) || '',
    mrn: joined(s['00100020']) || '',
    patientName: alphabetic(s['00100010']) || '',
    description: joined(s['00081030']) || '',
    instances: Number(joined(s['00201208'])) || 0,
    modalities: joined(modalityList(s['00080060'], s['00080061'])) || '',
  })
);

(answers.series || []).forEach(s => [s['0020000E'], s['00080060'], s['00200011'], s['0008103E']].map(joined));

process.stdout.write(JSON.stringify(rows));
