-- Newly diagnosed AF, 65+, no anticoagulant: per healthcare region and quarter (examples/recruitment_af_regions.cohort): every attrition step.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH af AS MATERIALIZED (  -- contacts with an I48* diagnosis, from 1825 days before the earliest
                           -- possible index (2016-01-01) on: the index events and the look-back's
    SELECT lopnr, indatum
    FROM read_parquet('{data}/npr.parquet')
    WHERE (diagnos LIKE 'I48%' OR diagnos LIKE '% I48%')
      AND indatum BETWEEN DATE '2011-01-02' AND DATE '2025-09-30'
),
idx AS (  -- the first one in the index window
    SELECT lopnr, min(indatum) AS index_date
    FROM af
    WHERE indatum >= DATE '2016-01-01'
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan, p.kommun
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- aged 65 or older
    SELECT * FROM s0 c
    WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
          BETWEEN 12 * 65 AND 12 * 120 + 11
),
s2 AS (  -- no AF contact 1..1825 days before
    SELECT * FROM s1 c WHERE NOT EXISTS (
        SELECT 1 FROM af a
        WHERE a.lopnr = c.lopnr AND a.indatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
s3 AS (  -- no oral anticoagulant dispensed 1..365 days before
    SELECT * FROM s2 c WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
        WHERE l.lopnr = c.lopnr AND (l.atc IN ('B01AA03', 'B01AE07') OR l.atc LIKE 'B01AF%')
          AND l.edatum BETWEEN c.index_date - 365 AND c.index_date - 1
    )
)
SELECT (SELECT count(*) FROM s0) AS n0,
       (SELECT count(*) FROM s1) AS n1,
       (SELECT count(*) FROM s2) AS n2,
       (SELECT count(*) FROM s3) AS n3
