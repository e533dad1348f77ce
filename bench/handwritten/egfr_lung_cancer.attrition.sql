-- EGFR exon 19 deletion or L858R, lung cancer, alive (examples/egfr_lung_cancer.cohort): every attrition step.
-- One query, a semi or anti join per criterion on the whole index cohort, codes matched with
-- LIKE item matches: measured faster here than the staged form (bench/README.md).
WITH idx AS (
    SELECT lopnr, min(provdatum) AS index_date
    FROM read_parquet('{data}/gms.parquet')
    WHERE gene = 'EGFR' AND variant IN ('p.L858R', 'p.E746_A750del')
      AND klass IN ('patogen', 'trolig patogen')
    GROUP BY lopnr
),
cohort AS (
    SELECT i.lopnr, i.index_date, p.fodelsear, p.fodelsemanad, p.lan
    FROM idx i
    JOIN read_parquet('{data}/population.parquet') p ON p.lopnr = i.lopnr
    WHERE NOT EXISTS (
        SELECT 1 FROM read_parquet('{data}/optout.parquet') o
        WHERE o.lopnr = i.lopnr AND o.andamal IN ('forskning', 'alla')
    )
),
flags AS (
    SELECT
        12 * year(c.index_date) + month(c.index_date) - 12 * c.fodelsear - c.fodelsemanad
            BETWEEN 12 * 18 AND 12 * 120 + 11 AS adult,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/npr.parquet') n
            WHERE n.lopnr = c.lopnr AND (n.diagnos LIKE 'C34%' OR n.diagnos LIKE '% C34%')
              AND n.indatum BETWEEN c.index_date - INTERVAL 365 DAY AND c.index_date + INTERVAL 365 DAY
        ) AS lung_cancer,
        EXISTS (
            SELECT 1 FROM read_parquet('{data}/dors.parquet') d
            WHERE d.lopnr = c.lopnr AND d.dodsdat IS NOT NULL
        ) AS died
    FROM cohort c
)
SELECT
    count(*) AS n0,
    count(*) FILTER (WHERE adult) AS n1,
    count(*) FILTER (WHERE adult AND lung_cancer) AS n2,
    count(*) FILTER (WHERE adult AND lung_cancer AND NOT died) AS n3
FROM flags
