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
    AND STARTS_WITH("diagnos", 'J44')
), scan2 AS (
  SELECT
    *
  FROM (
    SELECT
      "lopnr" AS lopnr,
      "indatum" AS d0,
      (
        (
          (
            (
              "vardform" = 'S'
            ) AND (
              "hdia" IN ('J440', 'J441')
            )
          )
        )
      ) AS f0
    FROM "npr"
    WHERE
      NOT "indatum" IS NULL
      AND "indatum" >= CAST('2024-01-02' AS DATE)
      AND "indatum" <= CAST('2025-01-01' AS DATE)
  ) AS r
  WHERE
    "f0"
), scan3 AS (
  SELECT
    "lopnr" AS lopnr,
    "edatum" AS d0,
    (
      TRUE
    ) AS f0
  FROM "lmr#atc"
  WHERE
    NOT "edatum" IS NULL
    AND "edatum" >= CAST('2024-01-02' AS DATE)
    AND "edatum" <= CAST('2025-01-01' AS DATE)
    AND (
      "atc" IN (
        'R03AC12',
        'R03AC13',
        'R03AC18',
        'R03AC19',
        'R03AL03',
        'R03AL04',
        'R03AL05',
        'R03AL06',
        'R03AL07',
        'R03AL08',
        'R03AL09',
        'R03AL11',
        'R03BB04',
        'R03BB05',
        'R03BB06',
        'R03BB07'
      )
      OR STARTS_WITH("atc", 'R03AK')
      OR STARTS_WITH("atc", 'R03BA')
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
      ) BETWEEN 480 AND 1451,
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
      DISTINCT CASE
        WHEN ev."atom" = 1
        AND ev."d" >= (
          base."index_date" + INTERVAL (-365) DAY
        )
        AND ev."d" <= base."index_date"
        THEN ev."d"
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
    COALESCE(agg."c1", 0) >= 2
), ev3 AS (
  SELECT
    scan3."lopnr" AS lopnr,
    scan3."d0" AS d,
    2 AS atom
  FROM scan3
  WHERE
    scan3."f0" AND "lopnr" IN (
      SELECT
        "lopnr"
      FROM s2
    )
), agg3 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 2
        AND ev."d" >= (
          base."index_date" + INTERVAL (-365) DAY
        )
        AND ev."d" <= base."index_date"
        THEN 1
      END
    ) AS c2
  FROM ev3 AS ev
  JOIN s2 AS base
    ON ev."lopnr" = base."lopnr"
  GROUP BY
    ev."lopnr"
), s3 AS (
  SELECT
    base."lopnr",
    base."index_date",
    base."kon",
    base."lan",
    base."fodelsear",
    base."fodelsemanad"
  FROM s2 AS base
  LEFT JOIN agg3 AS agg
    ON agg."lopnr" = base."lopnr"
  WHERE
    COALESCE(agg."c2", 0) > 0
), persons AS (
  SELECT
    base."lan" AS region
  FROM s3 AS base
)
SELECT
  "region",
  "grp",
  "n0",
  "n1",
  "n2",
  "n3",
  "n4"
FROM (
  SELECT
    "region",
    GROUPING("region") AS grp,
    CAST(NULL AS BIGINT) AS n0,
    CAST(NULL AS BIGINT) AS n1,
    CAST(NULL AS BIGINT) AS n2,
    CAST(NULL AS BIGINT) AS n3,
    COUNT(*) AS n4
  FROM persons
  GROUP BY
    GROUPING SETS (
      ("region")
    )
  UNION ALL
  SELECT
    NULL AS region,
    1 AS grp,
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
    ) AS n3,
    (
      SELECT
        COUNT(*)
      FROM s3
    ) AS n4
) AS r
