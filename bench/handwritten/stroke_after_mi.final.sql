-- Ischaemic stroke within 30 days after a first MI (examples/stroke_after_mi.cohort): final count only.
-- Staged: each step a CTE of the survivors of the step before (s0 the index, s1 ...), each
-- criterion a semi or anti join on them; codes matched with LIKE item matches, a register
-- read once where several criteria need it.
WITH n AS MATERIALIZED (  -- npr read once: MI and stroke contacts
    SELECT * FROM (
        SELECT lopnr, indatum,
               diagnos LIKE 'I21%' OR diagnos LIKE '% I21%'
                   OR diagnos LIKE 'I22%' OR diagnos LIKE '% I22%' AS mi,
               diagnos LIKE 'I63%' OR diagnos LIKE '% I63%'
                   OR diagnos LIKE 'I64%' OR diagnos LIKE '% I64%' AS stroke
        FROM read_parquet('{data}/npr.parquet')
    )
    WHERE mi OR stroke
),
idx AS (  -- the first MI contact in 2011-01-01..2024-11-30
    SELECT lopnr, min(indatum) AS index_date
    FROM n
    WHERE mi AND indatum BETWEEN DATE '2011-01-01' AND DATE '2024-11-30'
    GROUP BY lopnr
),
s0 AS (  -- in the population register, not opted out of research
    SELECT i.lopnr, i.index_date
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
s1 AS (  -- no MI 1..1825 days before
    SELECT * FROM s0 c WHERE NOT EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.mi
          AND n.indatum BETWEEN c.index_date - 1825 AND c.index_date - 1
    )
),
s2 AS (  -- no stroke before
    SELECT * FROM s1 c WHERE NOT EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.stroke AND n.indatum < c.index_date
    )
),
s3 AS (  -- a stroke 0..30 days after (the infarction's own stay included), in npr or as the
         -- underlying cause of a death (dors: one code per death, so a prefix of the column)
    SELECT * FROM s2 c
    WHERE EXISTS (
        SELECT 1 FROM n WHERE n.lopnr = c.lopnr AND n.stroke
          AND n.indatum BETWEEN c.index_date AND c.index_date + 30
    )
    OR EXISTS (
        SELECT 1 FROM read_parquet('{data}/dors.parquet') d
        WHERE d.lopnr = c.lopnr AND (d.ulorsak LIKE 'I63%' OR d.ulorsak LIKE 'I64%')
          AND d.dodsdat BETWEEN c.index_date AND c.index_date + 30
    )
)
SELECT count(*) AS n FROM s3
