WITH scan0 AS (
  SELECT
    *
  FROM (
    SELECT
      "lopnr" AS lopnr,
      "dodsdat" AS d0,
      (
        (
          TRUE
        )
      ) AS f0
    FROM "dors"
    WHERE
      NOT "dodsdat" IS NULL AND "dodsdat" <= CAST('2024-12-31' AS DATE)
  ) AS r
  WHERE
    "f0"
), scan1 AS (
  SELECT
    "lopnr" AS lopnr,
    "indatum" AS d0,
    (
      TRUE
    ) AS f0
  FROM "npr#diagnos"
  WHERE
    NOT "indatum" IS NULL
    AND "indatum" <= CAST('2024-12-31' AS DATE)
    AND STARTS_WITH("diagnos", 'I48')
), scan2 AS (
  SELECT
    "lopnr" AS lopnr,
    "edatum" AS d0,
    (
      TRUE
    ) AS f0
  FROM "lmr#atc"
  WHERE
    NOT "edatum" IS NULL
    AND "edatum" >= CAST('2024-07-05' AS DATE)
    AND "edatum" <= CAST('2025-01-01' AS DATE)
    AND (
      "atc" IN ('B01AA03', 'B01AE07') OR STARTS_WITH("atc", 'B01AF')
    )
), base AS (
  SELECT
    p."lopnr" AS lopnr,
    CAST('2025-01-01' AS DATE) AS index_date,
    p."kon" AS kon,
    p."lan" AS lan,
    p."fodelsear" AS fodelsear,
    p."fodelsemanad" AS fodelsemanad
  FROM "population#person" AS p
  LEFT JOIN (
    SELECT DISTINCT
      o."lopnr"
    FROM "optout" AS o
    WHERE
      o."andamal" IN ('forskning', 'alla')
  ) AS oo
    ON oo."lopnr" = p."lopnr"
  WHERE
    (
      NOT p."lopnr" IS NULL
      AND NOT EXISTS(
        SELECT
          1
        FROM scan0 AS x
        WHERE
          x."f0" AND x."lopnr" = p."lopnr"
      )
      AND 12 * CAST(p."fodelsear" AS BIGINT) + CAST(p."fodelsemanad" AS BIGINT) <= 24301
    )
    AND oo."lopnr" IS NULL
), s0 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad"
  FROM base AS base
  WHERE
    COALESCE(
      (
        (
          12 * YEAR(base."index_date") + MONTH(base."index_date")
        ) - (
          12 * CAST(base."fodelsear" AS BIGINT) + CAST(base."fodelsemanad" AS BIGINT)
        )
      ) BETWEEN 780 AND 1451,
      FALSE
    )
), ev1 AS (
  SELECT
    scan1."lopnr" AS lopnr,
    scan1."d0" AS d,
    0 AS atom
  FROM scan1
  WHERE
    scan1."f0" AND "lopnr" IN (
      SELECT
        "lopnr"
      FROM s0
    )
), agg1 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 0 AND ev."d" <= (
          base."index_date" + INTERVAL (-1) DAY
        )
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
    base."fodelsemanad"
  FROM s0 AS base
  LEFT JOIN agg1 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    COALESCE(agg."c0", 0) > 0
), ev2 AS (
  SELECT
    scan2."lopnr" AS lopnr,
    scan2."d0" AS d,
    1 AS atom
  FROM scan2
  WHERE
    scan2."f0" AND "lopnr" IN (
      SELECT
        "lopnr"
      FROM s1
    )
), agg2 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 1
        AND ev."d" >= (
          base."index_date" + INTERVAL (-180) DAY
        )
        AND ev."d" <= base."index_date"
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
    base."fodelsemanad"
  FROM s1 AS base
  LEFT JOIN agg2 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    NOT (
      COALESCE(agg."c1", 0) > 0
    )
), persons AS (
  SELECT
    CASE WHEN base."kon" = 1 THEN 'male' WHEN base."kon" = 2 THEN 'female' END AS sex,
    CAST(FLOOR(
      (
        (
          12 * YEAR(base."index_date") + MONTH(base."index_date")
        ) - (
          12 * CAST(base."fodelsear" AS BIGINT) + CAST(base."fodelsemanad" AS BIGINT)
        )
      ) / 120.0
    ) AS INT) * 10 AS age_10
  FROM s2 AS base
)
SELECT
  "sex",
  "age_10",
  "grp",
  "n0",
  "n1",
  "n2",
  "n3"
FROM (
  SELECT
    "sex",
    "age_10",
    GROUPING("sex", "age_10") AS grp,
    CAST(NULL AS BIGINT) AS n0,
    CAST(NULL AS BIGINT) AS n1,
    CAST(NULL AS BIGINT) AS n2,
    COUNT(*) AS n3
  FROM persons
  GROUP BY
    GROUPING SETS (
      ("sex", "age_10")
    )
  UNION ALL
  SELECT
    NULL AS sex,
    NULL AS age_10,
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
