-- Type 2 diabetes in primary care, 1 January 2024 (examples/diabetic_population_2024.cohort): final count only.
WITH cohort AS (  -- born in or before the index month, alive on 2024-01-01, not opted out
    SELECT p.lopnr, DATE '2024-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.lan
    FROM read_parquet('{data}/population.parquet') p
    WHERE 12 * p.fodelsear + p.fodelsemanad <= 12 * 2024 + 1
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/dors.parquet') d
          WHERE d.lopnr = p.lopnr AND d.dodsdat < DATE '2024-01-01'
      )
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/optout.parquet') o
          WHERE o.lopnr = p.lopnr AND o.andamal IN ('forskning', 'alla')
      )
)
SELECT count(*) AS n
FROM cohort c
WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 18 AND 12 * 80 + 11
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/ndr.parquet') r
      WHERE r.lopnr = c.lopnr AND r.hba1c > 0 AND r.diabetestyp = 2
        AND r.regdat BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND n.hdia LIKE 'E11%'
        AND n.indatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date - INTERVAL 0 DAY
  )
