-- Atrial fibrillation without anticoagulant (examples/af_without_anticoagulant.cohort):
-- final count and breakdown of the final cohort by `report by sex, age 10`, as antal returns them
-- (the attrition: af_without_anticoagulant.attrition.sql; the final count only: af_without_anticoagulant.final.sql).
WITH idx AS (
    SELECT lopnr, min(indatum) AS index_date
    FROM read_parquet('{data}/npr.parquet')
    WHERE regexp_matches(diagnos, '(^| )I48')
      AND indatum BETWEEN DATE '2016-01-01' AND DATE '2023-12-31'
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.kon
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
)
SELECT CASE c.kon WHEN 1 THEN 'male' WHEN 2 THEN 'female' END AS sex,
       CAST(floor((12 * year(c.index_date) + month(c.index_date)
                   - 12 * c.fodelsear - c.fodelsemanad) / 120) AS INT) * 10 AS age_10,
       GROUPING(sex, age_10) AS total, count(*) AS n
FROM cohort c
WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 65 AND 12 * 120 + 11
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND (l.atc = 'B01AA03' OR l.atc LIKE 'B01AF%')
        AND l.edatum BETWEEN c.index_date AND c.index_date + INTERVAL 365 DAY
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND (l.atc = 'B01AA03' OR l.atc LIKE 'B01AF%')
        AND l.edatum < c.index_date
  )
GROUP BY GROUPING SETS ((), (sex, age_10))
