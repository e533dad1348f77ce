WITH scan0 AS MATERIALIZED (
  SELECT
    *
  FROM (
    SELECT
      "lopnr" AS lopnr,
      "indatum" AS d0,
      (
        "indatum" >= CAST('2016-01-01' AS DATE)
        AND "indatum" <= CAST('2025-09-30' AS DATE)
        AND (
          (
            "diagnos" LIKE 'I48%' OR "diagnos" LIKE '% I48%'
          )
        )
      ) AS f0,
      (
        "indatum" >= CAST('2011-01-02' AS DATE)
        AND "indatum" <= CAST('2025-09-29' AS DATE)
        AND (
          (
            "diagnos" LIKE 'I48%' OR "diagnos" LIKE '% I48%'
          )
        )
      ) AS f1
    FROM "npr"
    WHERE
      NOT "indatum" IS NULL
      AND "indatum" >= CAST('2011-01-02' AS DATE)
      AND "indatum" <= CAST('2025-09-30' AS DATE)
  ) AS r
  WHERE
    (
      "f0" OR "f1"
    )
), scan1 AS (
  SELECT
    "lopnr" AS lopnr,
    "edatum" AS d0,
    (
      TRUE
    ) AS f0
  FROM "lmr"
  WHERE
    NOT "edatum" IS NULL
    AND "edatum" >= CAST('2015-01-01' AS DATE)
    AND "edatum" <= CAST('2025-09-29' AS DATE)
    AND (
      "atc" IN ('B01AA03', 'B01AE07') OR "atc" LIKE 'B01AF%'
    )
), ix AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d
  FROM scan0
  WHERE
    scan0."f0"
), idx AS (
  SELECT
    "lopnr",
    MIN("d") AS index_date
  FROM ix
  GROUP BY
    "lopnr"
), base AS (
  SELECT
    p."lopnr" AS lopnr,
    i."index_date",
    CASE WHEN MIN(p."kon") = MAX(p."kon") THEN MIN(p."kon") END AS kon,
    CASE WHEN MIN(p."lan") = MAX(p."lan") THEN MIN(p."lan") END AS lan,
    CASE WHEN MIN(p."fodelsear") = MAX(p."fodelsear") THEN MIN(p."fodelsear") END AS fodelsear,
    CASE
      WHEN MIN(p."fodelsemanad") = MAX(p."fodelsemanad")
      THEN MIN(p."fodelsemanad")
    END AS fodelsemanad,
    CASE WHEN MIN(p."kommun") = MAX(p."kommun") THEN MIN(p."kommun") END AS kommun
  FROM "population" AS p
  JOIN idx AS i
    ON p."lopnr" = i."lopnr"
  LEFT JOIN (
    SELECT DISTINCT
      o."lopnr"
    FROM "optout" AS o
    WHERE
      o."andamal" IN ('forskning', 'alla')
  ) AS oo
    ON oo."lopnr" = p."lopnr"
  WHERE
    oo."lopnr" IS NULL
  GROUP BY
    p."lopnr",
    i."index_date"
), s0 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad",
    base."kommun"
  FROM base AS base
  WHERE
    COALESCE(
      (
        (
          12 * CAST(EXTRACT(YEAR FROM base."index_date") AS INT) + CAST(EXTRACT(MONTH FROM base."index_date") AS INT)
        ) - (
          12 * CAST(base."fodelsear" AS BIGINT) + CAST(base."fodelsemanad" AS BIGINT)
        )
      ) BETWEEN 780 AND 1451,
      FALSE
    )
), ev1 AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    0 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s0
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f1"
    AND scan0."d0" >= b."_ix_date" + -1825
    AND scan0."d0" <= b."_ix_date" + -1
), agg1 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 0
        AND ev."d" >= base."index_date" + -1825
        AND ev."d" <= base."index_date" + -1
        THEN 1
      END
    ) AS c0
  FROM ev1 AS ev
  JOIN s0 AS base
    ON ev."lopnr" = base."lopnr"
  GROUP BY
    ev."lopnr"
), s1 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad",
    base."kommun"
  FROM s0 AS base
  LEFT JOIN agg1 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    NOT (
      COALESCE(agg."c0", 0) > 0
    )
), ev2 AS (
  SELECT
    scan1."lopnr" AS lopnr,
    scan1."d0" AS d,
    1 AS atom
  FROM scan1
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s1
  ) AS b
    ON scan1."lopnr" = b."_ix_lopnr"
  WHERE
    scan1."f0"
    AND scan1."d0" >= b."_ix_date" + -365
    AND scan1."d0" <= b."_ix_date" + -1
), agg2 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 1
        AND ev."d" >= base."index_date" + -365
        AND ev."d" <= base."index_date" + -1
        THEN 1
      END
    ) AS c1
  FROM ev2 AS ev
  JOIN s1 AS base
    ON ev."lopnr" = base."lopnr"
  GROUP BY
    ev."lopnr"
), s2 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad",
    base."kommun"
  FROM s1 AS base
  LEFT JOIN agg2 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    NOT (
      COALESCE(agg."c1", 0) > 0
    )
), persons AS (
  SELECT
    CASE
      WHEN base."lan" = '13' AND base."kommun" IS NULL
      THEN CAST(NULL AS VARCHAR)
      WHEN base."lan" = '13' AND base."kommun" IN ('1315', '1380', '1381')
      THEN 'syd'
      WHEN base."lan" IN ('22', '23', '24', '25')
      THEN 'norr'
      WHEN base."lan" IN ('03', '04', '17', '18', '19', '20', '21')
      THEN 'mellersta'
      WHEN base."lan" IN ('01', '09')
      THEN 'stockholm-gotland'
      WHEN base."lan" IN ('05', '06', '08')
      THEN 'sydost'
      WHEN base."lan" IN ('13', '14')
      THEN 'vast'
      WHEN base."lan" IN ('07', '10', '12')
      THEN 'syd'
    END AS sjukvardsregion,
    CAST(EXTRACT(YEAR FROM base."index_date") AS INT) * 10 + CASE
      WHEN CAST(EXTRACT(MONTH FROM base."index_date") AS INT) <= 3
      THEN 1
      WHEN CAST(EXTRACT(MONTH FROM base."index_date") AS INT) <= 6
      THEN 2
      WHEN CAST(EXTRACT(MONTH FROM base."index_date") AS INT) <= 9
      THEN 3
      ELSE 4
    END AS quarter
  FROM s2 AS base
)
SELECT
  "sjukvardsregion",
  "quarter",
  "grp",
  "n0",
  "n1",
  "n2",
  "n3"
FROM (
  SELECT
    "sjukvardsregion",
    "quarter",
    GROUPING("sjukvardsregion", "quarter") AS grp,
    CAST(NULL AS BIGINT) AS n0,
    CAST(NULL AS BIGINT) AS n1,
    CAST(NULL AS BIGINT) AS n2,
    COUNT(*) AS n3
  FROM persons
  GROUP BY
    GROUPING SETS (
      ("sjukvardsregion"),
      ("quarter")
    )
  UNION ALL
  SELECT
    NULL AS sjukvardsregion,
    NULL AS quarter,
    3 AS grp,
    (
      SELECT
        COUNT(*)
      FROM base
    ) AS n0,
    (
      SELECT
        COUNT(*)
      FROM s0
    ) AS n1,
    (
      SELECT
        COUNT(*)
      FROM s1
    ) AS n2,
    (
      SELECT
        COUNT(*)
      FROM s2
    ) AS n3
) AS r
