-- EGFR exon 19 deletion or L858R, lung cancer, alive (examples/egfr_lung_cancer.cohort): final count only.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH idx AS (
    SELECT lopnr, min(provdatum) AS index_date
    FROM read_parquet('{data}/gms.parquet')
    WHERE gene = 'EGFR' AND variant IN ('p.L858R', 'p.E746_A750del')
      AND klass IN ('patogen', 'trolig patogen')
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan
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
s2 AS (  -- a C34* contact within 365 days of the index
    SELECT * FROM s1 c WHERE EXISTS (
        SELECT 1 FROM read_parquet('{data}/npr.parquet') n
        WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'C34%' OR n.diagnos LIKE '% C34%')
          AND n.indatum BETWEEN c.index_date - 365 AND c.index_date + 365
    )
),
s3 AS (  -- alive
    SELECT * FROM s2 c WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/dors.parquet') d
        WHERE d.lopnr = c.lopnr AND d.dodsdat IS NOT NULL
    )
)
SELECT count(*) AS n FROM s3
