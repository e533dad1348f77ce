-- Atrial fibrillation, not on an oral anticoagulant, 1 January 2025 (examples/af_without_anticoagulant.cohort):
-- final count and breakdown of the final cohort by `report by sex, age 10`, as antal returns them
-- (the same on the raw Parquet files: ../af_without_anticoagulant.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH s0 AS (  -- born in or before the index month, alive on 2025-01-01, not opted out
    SELECT p.lopnr, DATE '2025-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.kon
    FROM population p
    WHERE 12 * p.fodelsear + p.fodelsemanad <= 12 * 2025 + 1
      AND NOT EXISTS (
          SELECT 1 FROM dors d
          WHERE d.lopnr = p.lopnr AND d.dodsdat < DATE '2025-01-01'
      )
      AND NOT EXISTS (
          SELECT 1 FROM optout o
          WHERE o.lopnr = p.lopnr AND o.andamal IN ('forskning', 'alla')
      )
),
s1 AS (  -- age 65-120 on 2025-01-01
    SELECT * FROM s0 c
    WHERE 12 * 2025 + 1 - 12 * c.fodelsear - c.fodelsemanad BETWEEN 12 * 65 AND 12 * 120 + 11
),
s2 AS (  -- an I48* contact before the index date
    SELECT * FROM s1
    WHERE lopnr IN (
        SELECT lopnr FROM "npr#diagnos"
        WHERE (diagnos LIKE 'I48%') AND indatum < DATE '2025-01-01'
    )
),
s3 AS (  -- no oral anticoagulant dispensed 2024-07-05..2025-01-01 (180 days before)
    SELECT * FROM s2
    WHERE lopnr NOT IN (
        SELECT lopnr FROM "lmr#atc"
        WHERE atc BETWEEN 'B01AA03' AND 'B01AF~'  -- one range of the code-sorted table, then the codes
          AND (atc IN ('B01AA03', 'B01AE07') OR atc LIKE 'B01AF%')
          AND edatum BETWEEN DATE '2024-07-05' AND DATE '2025-01-01' AND lopnr IS NOT NULL
    )
)
SELECT CASE c.kon WHEN 1 THEN 'male' WHEN 2 THEN 'female' END AS sex,
       CAST(floor((12 * year(c.index_date) + month(c.index_date)
                   - 12 * c.fodelsear - c.fodelsemanad) / 120) AS INT) * 10 AS age_10,
       GROUPING(sex, age_10) AS total, count(*) AS n
FROM s3 c
GROUP BY GROUPING SETS ((), (sex, age_10))
