-- Newly diagnosed T2D, uncontrolled on metformin, 40-75 (examples/t2d_metformin.cohort): final count only.
WITH idx AS (
    SELECT lopnr, min(indatum) AS index_date
    FROM read_parquet('{data}/npr.parquet')
    WHERE regexp_matches(diagnos, '(^| )E11')
      AND indatum BETWEEN DATE '2015-01-01' AND DATE '2023-12-31'
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan, p.kon
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
latest_hba1c AS (  -- latest non-missing HbA1c 180-730 days after index (ties: the highest)
    SELECT lopnr, max(hba1c) AS hba1c
    FROM (
        SELECT c.lopnr, n.regdat, n.hba1c
        FROM cohort c
        JOIN read_parquet('{data}/ndr.parquet') n ON n.lopnr = c.lopnr
        WHERE n.hba1c IS NOT NULL
          AND n.regdat BETWEEN c.index_date + INTERVAL 180 DAY AND c.index_date + INTERVAL 730 DAY
        QUALIFY n.regdat = max(n.regdat) OVER (PARTITION BY c.lopnr)
    )
    GROUP BY lopnr
)
SELECT count(*) AS n
FROM cohort c
WHERE 12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
      BETWEEN 12 * 40 AND 12 * 75 + 11
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )E11')
        AND n.indatum BETWEEN c.index_date - INTERVAL 1825 DAY AND c.index_date - INTERVAL 1 DAY
  )
  AND NOT (
      EXISTS (
          SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
          WHERE l.lopnr = c.lopnr AND l.atc LIKE 'A10%'
            AND l.edatum BETWEEN c.index_date - INTERVAL 1825 DAY AND c.index_date - INTERVAL 1 DAY
      )
  )
  AND (
      EXISTS (
          SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
          WHERE l.lopnr = c.lopnr AND l.atc IN ('A10BA02', 'A10BD02', 'A10BD03', 'A10BD05', 'A10BD14', 'A10BD17', 'A10BD26',
                       'A10BD07', 'A10BD08', 'A10BD10', 'A10BD11', 'A10BD13', 'A10BD18', 'A10BD22',
                       'A10BD15', 'A10BD16', 'A10BD20', 'A10BD23', 'A10BD25', 'A10BD27')
            AND l.edatum BETWEEN c.index_date + INTERVAL 0 DAY AND c.index_date + INTERVAL 90 DAY
      )
  )
  AND c.lopnr IN (SELECT lopnr FROM latest_hba1c WHERE hba1c > 53)
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )E10')
        AND n.indatum IS NOT NULL
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/npr.parquet') n
      WHERE n.lopnr = c.lopnr AND regexp_matches(n.diagnos, '(^| )(I21|I22)')
        AND n.indatum < c.index_date
  )
  AND NOT EXISTS (
      SELECT 1 FROM read_parquet('{data}/lmr.parquet') l
      WHERE l.lopnr = c.lopnr AND l.atc LIKE 'A10A%'
        AND l.edatum BETWEEN c.index_date + INTERVAL 0 DAY AND c.index_date + INTERVAL 730 DAY
  )
