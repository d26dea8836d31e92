#!/usr/bin/env python3
"""Writes N order rows as NDJSON (for the flow) and CSV (for PostgreSQL's own COPY)."""
import json
import random
import sys

n = int(sys.argv[1])
ndjson_path, csv_path = sys.argv[2], sys.argv[3]
rng = random.Random(42)
with open(ndjson_path, "w") as nd, open(csv_path, "w") as csv:
    csv.write("id,customer,total,paid,status\n")
    for i in range(1, n + 1):
        row = {
            "id": i,
            "customer": f"customer-{rng.randint(1, 50000)}",
            "total": round(rng.uniform(1, 5000), 2),
            "paid": rng.random() < 0.7,
            "status": rng.choice(["open", "shipped", "cancelled", "returned"]),
        }
        nd.write(json.dumps(row) + "\n")
        csv.write(f'{row["id"]},{row["customer"]},{row["total"]},{str(row["paid"]).lower()},{row["status"]}\n')
