-- Type 2 diabetes in primary care, 1 January 2024 (examples/diabetic_population_2024.cohort):
-- final count and breakdown of the final cohort by `report by region, age 20`, as antal returns them
-- (the same on the raw Parquet files: ../diabetic_population_2024.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH s0 AS (  -- born in or before the index month, alive on 2024-01-01, not opted out
    SELECT p.lopnr, DATE '2024-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.lan
    FROM population p
    WHERE 12 * p.fodelsear + p.fodelsemanad <= 12 * 2024 + 1
      AND NOT EXISTS (
          SELECT 1 FROM dors d
          WHERE d.lopnr = p.lopnr AND d.dodsdat < DATE '2024-01-01'
      )
      AND NOT EXISTS (
          SELECT 1 FROM optout o
          WHERE o.lopnr = p.lopnr AND o.andamal IN ('forskning', 'alla')
      )
),
s1 AS (  -- age 18-80 on 2024-01-01
    SELECT * FROM s0 c
    WHERE 12 * 2024 + 1 - 12 * c.fodelsear - c.fodelsemanad BETWEEN 12 * 18 AND 12 * 80 + 11
),
s2 AS (  -- type 2 in NDR with an HbA1c in 2023-01-01..2024-01-01
    SELECT * FROM s1
    WHERE lopnr IN (
        SELECT lopnr FROM ndr
        WHERE hba1c > 0 AND diabetestyp = 2
          AND regdat BETWEEN DATE '2023-01-01' AND DATE '2024-01-01'
    )
),
s3 AS (  -- no E11* main diagnosis in specialist care in 2023-01-01..2024-01-01
    SELECT * FROM s2
    WHERE lopnr NOT IN (
        SELECT lopnr FROM "npr#hdia"
        WHERE hdia LIKE 'E11%' AND indatum BETWEEN DATE '2023-01-01' AND DATE '2024-01-01'
          AND lopnr IS NOT NULL
    )
)
SELECT c.lan AS region,
       CAST(floor((12 * year(c.index_date) + month(c.index_date)
                   - 12 * c.fodelsear - c.fodelsemanad) / 240) AS INT) * 20 AS age_20,
       GROUPING(region, age_20) AS total, count(*) AS n
FROM s3 c
GROUP BY GROUPING SETS ((), (region, age_20))
