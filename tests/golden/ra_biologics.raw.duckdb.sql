WITH scan0 AS MATERIALIZED (
  SELECT
    "lopnr" AS lopnr,
    "edatum" AS d0,
    (
      "edatum" >= CAST('2016-01-01' AS DATE)
      AND "edatum" <= CAST('2025-06-30' AS DATE)
      AND (
        "atc" IN (
          'L01FA01',
          'L01XC02',
          'L04AA24',
          'L04AA29',
          'L04AA37',
          'L04AA44',
          'L04AA45',
          'L04AC03',
          'L04AC07',
          'L04AC14',
          'L04AF01',
          'L04AF02',
          'L04AF03',
          'L04AF04'
        )
        OR STARTS_WITH("atc", 'L04AB')
      )
    ) AS f0,
    (
      "edatum" <= CAST('2025-06-29' AS DATE) AND "atc" IN ('L01BA01', 'L04AX03')
    ) AS f1,
    (
      "edatum" <= CAST('2025-06-29' AS DATE)
      AND (
        "atc" IN (
          'L01FA01',
          'L01XC02',
          'L04AA24',
          'L04AA29',
          'L04AA37',
          'L04AA44',
          'L04AA45',
          'L04AC03',
          'L04AC07',
          'L04AC14',
          'L04AF01',
          'L04AF02',
          'L04AF03',
          'L04AF04'
        )
        OR STARTS_WITH("atc", 'L04AB')
      )
    ) AS f2
  FROM "lmr"
  WHERE
    NOT "edatum" IS NULL
    AND "edatum" <= CAST('2025-06-30' AS DATE)
    AND (
      "atc" IN (
        'L01BA01',
        'L01FA01',
        'L01XC02',
        'L04AA24',
        'L04AA29',
        'L04AA37',
        'L04AA44',
        'L04AA45',
        'L04AC03',
        'L04AC07',
        'L04AC14',
        'L04AF01',
        'L04AF02',
        'L04AF03',
        'L04AF04',
        'L04AX03'
      )
      OR STARTS_WITH("atc", 'L04AB')
    )
), scan1 AS MATERIALIZED (
  SELECT
    "lopnr" AS lopnr,
    "adm_datum" AS d0,
    (
      "adm_datum" >= CAST('2016-01-01' AS DATE)
      AND "adm_datum" <= CAST('2025-06-30' AS DATE)
    ) AS f0,
    (
      "adm_datum" <= CAST('2025-06-29' AS DATE)
    ) AS f1
  FROM "rekvisition"
  WHERE
    NOT "adm_datum" IS NULL
    AND "adm_datum" <= CAST('2025-06-30' AS DATE)
    AND (
      "atc" IN (
        'L01FA01',
        'L01XC02',
        'L04AA24',
        'L04AA29',
        'L04AA37',
        'L04AA44',
        'L04AA45',
        'L04AC03',
        'L04AC07',
        'L04AC14',
        'L04AF01',
        'L04AF02',
        'L04AF03',
        'L04AF04'
      )
      OR STARTS_WITH("atc", 'L04AB')
    )
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
            STARTS_WITH("diagnos", 'M05')
            OR "diagnos" LIKE '% M05%'
            OR STARTS_WITH("diagnos", 'M06')
            OR "diagnos" LIKE '% M06%'
          )
        )
      ) AS f0
    FROM "npr"
    WHERE
      NOT "indatum" IS NULL AND "indatum" <= CAST('2025-06-30' AS DATE)
  ) AS r
  WHERE
    "f0"
), ix AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d
  FROM scan0
  WHERE
    scan0."f0"
  UNION ALL
  SELECT
    scan1."lopnr" AS lopnr,
    scan1."d0" AS d
  FROM scan1
  WHERE
    scan1."f0"
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
    END AS fodelsemanad
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
      ) BETWEEN 216 AND 1451,
      FALSE
    )
), ev1 AS (
  SELECT
    scan2."lopnr" AS lopnr,
    scan2."d0" AS d,
    0 AS atom
  FROM scan2
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s0
  ) AS b
    ON scan2."lopnr" = b."_ix_lopnr"
  WHERE
    scan2."f0" AND scan2."d0" <= b."_ix_date"
), agg1 AS (
  SELECT
    ev."lopnr",
    COUNT(CASE WHEN ev."atom" = 0 AND ev."d" <= base."index_date" THEN 1 END) AS c0
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
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    1 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s1
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f1" AND scan0."d0" <= (
      b."_ix_date" + INTERVAL (-1) DAY
    )
), agg2 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 1 AND ev."d" <= (
          base."index_date" + INTERVAL (-1) DAY
        )
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
    COALESCE(agg."c1", 0) > 0
), ev3 AS (
  SELECT
    scan0."lopnr" AS lopnr,
    scan0."d0" AS d,
    2 AS atom
  FROM scan0
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s2
  ) AS b
    ON scan0."lopnr" = b."_ix_lopnr"
  WHERE
    scan0."f2" AND scan0."d0" <= (
      b."_ix_date" + INTERVAL (-1) DAY
    )
  UNION ALL
  SELECT
    scan1."lopnr" AS lopnr,
    scan1."d0" AS d,
    2 AS atom
  FROM scan1
  JOIN (
    SELECT
      "lopnr" AS _ix_lopnr,
      "index_date" AS _ix_date
    FROM s2
  ) AS b
    ON scan1."lopnr" = b."_ix_lopnr"
  WHERE
    scan1."f1" AND scan1."d0" <= (
      b."_ix_date" + INTERVAL (-1) DAY
    )
), agg3 AS (
  SELECT
    ev."lopnr",
    COUNT(
      CASE
        WHEN ev."atom" = 2 AND ev."d" <= (
          base."index_date" + INTERVAL (-1) DAY
        )
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
    NOT (
      COALESCE(agg."c2", 0) > 0
    )
), persons AS (
  SELECT
    base."lan" AS region,
    CASE WHEN base."kon" = 1 THEN 'male' WHEN base."kon" = 2 THEN 'female' END AS sex
  FROM s3 AS base
)
SELECT
  "region",
  "sex",
  "grp",
  "n0",
  "n1",
  "n2",
  "n3",
  "n4"
FROM (
  SELECT
    "region",
    "sex",
    GROUPING("region", "sex") AS grp,
    CAST(NULL AS BIGINT) AS n0,
    CAST(NULL AS BIGINT) AS n1,
    CAST(NULL AS BIGINT) AS n2,
    CAST(NULL AS BIGINT) AS n3,
    COUNT(*) AS n4
  FROM persons
  GROUP BY
    GROUPING SETS (
      ("region", "sex")
    )
  UNION ALL
  SELECT
    NULL AS region,
    NULL AS sex,
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
    ) AS n3,
    (
      SELECT
        COUNT(*)
      FROM s3
    ) AS n4
) AS r
