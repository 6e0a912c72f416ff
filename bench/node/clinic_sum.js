// make bench's Node.js reference (import-throughput): what a clinic-events processor built on
// csv-parse does with the same file, in memory only: parse every row by its header, sum the
// revenue (in cents). Run twice; prints one JSON line per run.
"use strict";
const fs = require("fs");
const { parse } = require("csv-parse");

function once(path) {
  return new Promise((resolve, reject) => {
    const began = process.hrtime.bigint();
    let rows = 0;
    let cents = 0;
    fs.createReadStream(path)
      .pipe(parse({ columns: true }))
      .on("data", (row) => {
        rows += 1;
        if (row.revenue_amount) cents += Math.round(parseFloat(row.revenue_amount) * 100);
      })
      .on("end", () => {
        const seconds = Number(process.hrtime.bigint() - began) / 1e9;
        resolve({ rows, revenue: (cents / 100).toFixed(2), seconds, rows_per_s: rows / seconds });
      })
      .on("error", reject);
  });
}

(async () => {
  for (let run = 0; run < 2; run += 1) console.log(JSON.stringify(await once(process.argv[2])));
})().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
