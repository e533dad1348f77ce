-- Hospitalised for heart failure, not on an SGLT2 inhibitor, 2023-2024 (examples/hf_sglt2_in_hospital.cohort): every attrition step.
WITH ix AS (  -- the index events: inpatient stays with heart failure as main diagnosis
    SELECT lopnr, indatum, sjukhus
    FROM read_parquet('{data}/npr.parquet')
    WHERE vardform = 'S' AND hdia IN ('I50', 'I500', 'I501', 'I509')
      AND indatum BETWEEN DATE '2023-01-01' AND DATE '2024-12-31'
),
idx AS (  -- the first one; hospital: the smallest sjukhus among the index events that day
    SELECT ix.lopnr, f.index_date, min(ix.sjukhus) AS hospital
    FROM (SELECT lopnr, min(indatum) AS index_date FROM ix GROUP BY lopnr) f
    JOIN ix ON ix.lopnr = f.lopnr AND ix.indatum = f.index_date
    GROUP BY ix.lopnr, f.index_date
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, i.hospital
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
flags AS (
    SELECT
        12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
            BETWEEN 12 * 18 AND 12 * 120 + 11 AS adult,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
            WHERE l.lopnr = c.lopnr AND (l.atc LIKE 'A10BK%' OR l.atc IN ('A10BD15', 'A10BD16', 'A10BD19', 'A10BD20', 'A10BD21',
                                                    'A10BD23', 'A10BD24', 'A10BD25', 'A10BD27'))
              AND l.edatum BETWEEN c.index_date - INTERVAL 180 DAY AND c.index_date - INTERVAL 0 DAY
        ) AS sglt2_180_days,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/npr.parquet') n
            WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )E10')
              AND n.indatum IS NOT NULL
        ) AS type_1
    FROM cohort c
)
SELECT
    count(*) AS n0,
    count(*) FILTER (WHERE adult) AS n1,
    count(*) FILTER (WHERE adult AND NOT sglt2_180_days) AS n2,
    count(*) FILTER (WHERE adult AND NOT sglt2_180_days AND NOT type_1) AS n3
FROM flags
