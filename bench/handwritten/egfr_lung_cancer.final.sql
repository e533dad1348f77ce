-- EGFR-mutated non-small-cell lung cancer (examples/egfr_lung_cancer.cohort): final count only.
WITH idx AS (
    SELECT lopnr, min(provdatum) AS index_date
    FROM read_parquet('{data}/gms.parquet')
    WHERE gene = 'EGFR' AND variant IN ('p.L858R', 'p.E746_A750del') AND klass = 'patogen'
      AND provdatum IS NOT NULL
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
)
SELECT count(*) AS n
FROM cohort c
WHERE EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )C34')
        AND n.indatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/dors.parquet') d
      WHERE d.lopnr = c.lopnr AND d.dodsdat <= c.index_date
  )
