-- Atrial fibrillation, not on an oral anticoagulant, 1 January 2025 (examples/af_without_anticoagulant.cohort): every attrition step.
WITH cohort AS (  -- born in or before the index month, alive on 2025-01-01, not opted out
    SELECT p.lopnr, DATE '2025-01-01' AS index_date, p.fodelsear, p.fodelsemanad, p.kon
    FROM read_parquet('{data}/population.parquet') p
    WHERE 12 * p.fodelsear + p.fodelsemanad <= 12 * 2025 + 1
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/dors.parquet') d
          WHERE d.lopnr = p.lopnr AND d.dodsdat < DATE '2025-01-01'
      )
      AND NOT EXISTS (
          SELECT 1 FROM read_parquet('{data}/optout.parquet') o
          WHERE o.lopnr = p.lopnr AND o.andamal IN ('forskning', 'alla')
      )
),
flags AS (
    SELECT
        12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
            BETWEEN 12 * 65 AND 12 * 120 + 11 AS age_65_plus,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/npr.parquet') n
            WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )I48')
              AND n.indatum < c.index_date
        ) AS af,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
            WHERE l.lopnr = c.lopnr AND (l.atc IN ('B01AA03', 'B01AE07') OR l.atc LIKE 'B01AF%')
              AND l.edatum BETWEEN c.index_date - INTERVAL 180 DAY AND c.index_date - INTERVAL 0 DAY
        ) AS oac_180_days
    FROM cohort c
)
SELECT
    count(*) AS n0,
    count(*) FILTER (WHERE age_65_plus) AS n1,
    count(*) FILTER (WHERE age_65_plus AND af) AS n2,
    count(*) FILTER (WHERE age_65_plus AND af AND NOT oac_180_days) AS n3
FROM flags
