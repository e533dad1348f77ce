-- HER2-positive breast cancer, stage II-III, operated, tissue banked (examples/her2_breast_cancer.cohort): every attrition step.
WITH idx AS (
    SELECT lopnr, min(diagnosdatum) AS index_date
    FROM read_parquet('{data}/nkbc.parquet')
    WHERE her2 = 'positiv' AND stadium IN ('II', 'III')
      AND diagnosdatum BETWEEN DATE '2015-01-01' AND DATE '2024-12-31'
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
flags AS (
    SELECT
        c.kon = 2 AS women,
        12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
            BETWEEN 12 * 18 AND 12 * 80 + 11 AS age_18_80,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/npr.parquet') n
            WHERE n.lopnr = c.lopnr AND regexp_matches(n.op, '(^| )(HAB|HAC)')
              AND n.indatum BETWEEN c.index_date + INTERVAL 0 DAY AND c.index_date + INTERVAL 365 DAY
        ) AS surgery,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/biobank.parquet') b
            WHERE b.lopnr = c.lopnr AND b.provtyp IN ('vavnad_ffpe', 'vavnad_frusen')
              AND b.provdatum >= c.index_date
        ) AS tissue
    FROM cohort c
)
SELECT
    count(*) AS n0,
    count(*) FILTER (WHERE women) AS n1,
    count(*) FILTER (WHERE women AND age_18_80) AS n2,
    count(*) FILTER (WHERE women AND age_18_80 AND surgery) AS n3,
    count(*) FILTER (WHERE women AND age_18_80 AND surgery AND tissue) AS n4
FROM flags
