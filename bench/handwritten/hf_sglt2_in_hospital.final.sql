-- Hospitalised for heart failure, not on an SGLT2 inhibitor, 2023-2024 (examples/hf_sglt2_in_hospital.cohort): final count only.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH ix AS MATERIALIZED (  -- the index events: inpatient stays with heart failure as main diagnosis
    SELECT lopnr, indatum, sjukhus
    FROM read_parquet('{data}/npr.parquet')
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
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
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
        SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
        WHERE l.lopnr = c.lopnr
          AND (l.atc LIKE 'A10BK%' OR l.atc IN ('A10BD15', 'A10BD16', 'A10BD19', 'A10BD20', 'A10BD21',
                                                'A10BD23', 'A10BD24', 'A10BD25', 'A10BD27'))
          AND l.edatum BETWEEN c.index_date - 180 AND c.index_date
    )
),
s3 AS (  -- no type 1 diabetes
    SELECT * FROM s2 c WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/npr.parquet') n
        WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'E10%' OR n.diagnos LIKE '% E10%')
          AND n.indatum IS NOT NULL
    )
)
SELECT count(*) AS n FROM s3
