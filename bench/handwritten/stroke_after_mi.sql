-- Ischaemic stroke within 30 days after a first MI (examples/stroke_after_mi.cohort):
-- final count and breakdown of the final cohort by `report by year`, as antal returns them
-- (the attrition: stroke_after_mi.attrition.sql; the final count only: stroke_after_mi.final.sql).
WITH idx AS (
    SELECT lopnr, min(indatum) AS index_date
    FROM read_parquet('{data}/npr.parquet')
    WHERE regexp_matches(diagnos, '(^| )(I21|I22)')
      AND indatum BETWEEN DATE '2011-01-01' AND DATE '2024-12-31'
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
)
SELECT year(c.index_date) AS year,
       GROUPING(year) AS total, count(*) AS n
FROM cohort c
WHERE NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )(I21|I22)')
        AND n.indatum BETWEEN c.index_date - INTERVAL 1825 DAY AND c.index_date - INTERVAL 1 DAY
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )(I63|I64)')
        AND n.indatum < c.index_date
  )
  AND EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )(I63|I64)')
        AND n.indatum BETWEEN c.index_date + INTERVAL 1 DAY AND c.index_date + INTERVAL 30 DAY
  )
GROUP BY GROUPING SETS ((), (year))
