-- Hospitalised for heart failure, not on an SGLT2 inhibitor, 2023-2024 (examples/hf_sglt2_in_hospital.cohort):
-- final count and breakdown of the final cohort by `report by hospital`, as antal returns them
-- (the same on the raw Parquet files: ../hf_sglt2_in_hospital.sql).
-- On the prepared layout (antal prepare; run on a connection to the prepared file): tables by
-- name, code tables "<register>#<column>" with one code per row sorted by code (a code set
-- also as one BETWEEN range, for the zone maps); staged as in the raw-Parquet query.
WITH ix AS MATERIALIZED (  -- the index events: inpatient stays with heart failure as main diagnosis
    SELECT lopnr, indatum, sjukhus
    FROM npr
    WHERE vardform = 'S' AND hdia IN ('I50', 'I500', 'I501', 'I509')
      AND indatum BETWEEN DATE '2023-01-01' AND DATE '2024-12-31'
),
idx AS (  -- the first one; hospital: the smallest sjukhus among the index events that day
    SELECT lopnr, min(indatum) AS index_date,
           arg_min(sjukhus, (indatum, sjukhus)) AS hospital
    FROM ix
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, i.hospital
    FROM idx i
    JOIN population p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM optout o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- adult
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 18 AND 12 * 120 + 11
),
s2 AS (  -- no SGLT2 inhibitor dispensed 0..180 days before
    SELECT * FROM s1 c WHERE NOT EXISTS (
        SELECT 1 FROM "lmr#atc" l
        WHERE l.lopnr = c.lopnr
          AND l.atc BETWEEN 'A10BD15' AND 'A10BK~'
          AND (l.atc LIKE 'A10BK%' OR l.atc IN ('A10BD15', 'A10BD16', 'A10BD19', 'A10BD20', 'A10BD21',
                                                'A10BD23', 'A10BD24', 'A10BD25', 'A10BD27'))
          AND l.edatum BETWEEN c.index_date - 180 AND c.index_date
    )
),
s3 AS (  -- no type 1 diabetes
    SELECT * FROM s2 c WHERE NOT EXISTS (
        SELECT 1 FROM "npr#diagnos" n
        WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'E10%')
          AND n.indatum IS NOT NULL
    )
)
SELECT c.hospital,
       GROUPING(hospital) AS total, count(*) AS n
FROM s3 c
GROUP BY GROUPING SETS ((), (hospital))
