WITH scan0 AS (
  SELECT
    `lopnr` AS lopnr,
    `edatum` AS d0,
    (
      `edatum` >= CAST('2015-01-01' AS DATE)
      AND `edatum` <= CAST('2023-12-31' AS DATE)
      AND `atc` IN (
        'A10BA02',
        'A10BD02',
        'A10BD03',
        'A10BD05',
        'A10BD07',
        'A10BD08',
        'A10BD10',
        'A10BD11',
        'A10BD13',
        'A10BD14',
        'A10BD15',
        'A10BD16',
        'A10BD17',
        'A10BD18',
        'A10BD20',
        'A10BD22',
        'A10BD23',
        'A10BD25',
        'A10BD26',
        'A10BD27'
      )
    ) AS f0,
    (
      `edatum` >= CAST('2010-01-02' AS DATE) AND `edatum` <= CAST('2023-12-30' AS DATE)
    ) AS f1,
    (
      `edatum` >= CAST('2015-01-01' AS DATE)
      AND `edatum` <= CAST('2025-12-30' AS DATE)
      AND STARTSWITH(`atc`, 'A10A')
    ) AS f2
  FROM `lmr`
  WHERE
    NOT `edatum` IS NULL
    AND `edatum` >= CAST('2010-01-02' AS DATE)
    AND `edatum` <= CAST('2025-12-30' AS DATE)
    AND STARTSWITH(`atc`, 'A10')
), scan1 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `regdat` AS d0,
      (
        `regdat` >= CAST('2014-01-01' AS DATE)
        AND `regdat` <= CAST('2024-12-30' AS DATE)
        AND (
          `diabetestyp` = 2
        )
      ) AS f0,
      (
        `regdat` >= CAST('2015-06-30' AS DATE)
        AND `regdat` <= CAST('2025-12-30' AS DATE)
        AND (
          NOT `hba1c` IS NULL
        )
      ) AS f1,
      COALESCE((
        `hba1c` > 53
      ), FALSE) AS ok0
    FROM `ndr`
    WHERE
      NOT `regdat` IS NULL
      AND `regdat` >= CAST('2014-01-01' AS DATE)
      AND `regdat` <= CAST('2025-12-30' AS DATE)
  ) AS r
  WHERE
    (
      `f0` OR `f1`
    )
), scan2 AS (
  SELECT
    *
  FROM (
    SELECT
      `lopnr` AS lopnr,
      `indatum` AS d0,
      (
        (
          (
            STARTSWITH(`diagnos`, 'E10') OR `diagnos` LIKE '% E10%'
          )
        )
      ) AS f0,
      (
        `indatum` <= CAST('2023-12-30' AS DATE)
        AND (
          (
            STARTSWITH(`diagnos`, 'I21')
            OR `diagnos` LIKE '% I21%'
            OR STARTSWITH(`diagnos`, 'I22')
            OR `diagnos` LIKE '% I22%'
          )
        )
      ) AS f1
    FROM `npr`
    WHERE
      NOT `indatum` IS NULL
  ) AS r
  WHERE
    (
      `f0` OR `f1`
    )
), ix AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d
  FROM scan0
  WHERE
    scan0.`f0`
), idx AS (
  SELECT
    `lopnr`,
    MIN(`d`) AS index_date
  FROM ix
  GROUP BY
    `lopnr`
), base AS (
  SELECT
    p.`lopnr` AS lopnr,
    i.`index_date`,
    CASE WHEN MIN(p.`kon`) = MAX(p.`kon`) THEN MIN(p.`kon`) END AS kon,
    CASE WHEN MIN(p.`lan`) = MAX(p.`lan`) THEN MIN(p.`lan`) END AS lan,
    CASE WHEN MIN(p.`fodelsear`) = MAX(p.`fodelsear`) THEN MIN(p.`fodelsear`) END AS fodelsear,
    CASE
      WHEN MIN(p.`fodelsemanad`) = MAX(p.`fodelsemanad`)
      THEN MIN(p.`fodelsemanad`)
    END AS fodelsemanad
  FROM `population` AS p
  JOIN idx AS i
    ON p.`lopnr` = i.`lopnr`
  LEFT JOIN (
    SELECT DISTINCT
      o.`lopnr`
    FROM `optout` AS o
    WHERE
      o.`andamal` IN ('forskning', 'alla')
  ) AS oo
    ON oo.`lopnr` = p.`lopnr`
  WHERE
    oo.`lopnr` IS NULL
  GROUP BY
    p.`lopnr`,
    i.`index_date`
), ev AS (
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    0 AS atom,
    TRUE AS ok
  FROM scan0
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan0.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan0.`f1`
    AND scan0.`d0` >= DATE_ADD(b.`_ix_date`, -1825)
    AND scan0.`d0` <= DATE_ADD(b.`_ix_date`, -1)
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    1 AS atom,
    TRUE AS ok
  FROM scan1
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan1.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan1.`f0`
    AND scan1.`d0` >= DATE_ADD(b.`_ix_date`, -365)
    AND scan1.`d0` <= DATE_ADD(b.`_ix_date`, 365)
  UNION ALL
  SELECT
    scan1.`lopnr` AS lopnr,
    scan1.`d0` AS d,
    2 AS atom,
    scan1.`ok0` AS ok
  FROM scan1
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan1.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan1.`f1`
    AND scan1.`d0` >= DATE_ADD(b.`_ix_date`, 180)
    AND scan1.`d0` <= DATE_ADD(b.`_ix_date`, 730)
  UNION ALL
  SELECT
    scan2.`lopnr` AS lopnr,
    scan2.`d0` AS d,
    3 AS atom,
    TRUE AS ok
  FROM scan2
  WHERE
    scan2.`f0` AND `lopnr` IN (
      SELECT
        `lopnr`
      FROM base
    )
  UNION ALL
  SELECT
    scan2.`lopnr` AS lopnr,
    scan2.`d0` AS d,
    4 AS atom,
    TRUE AS ok
  FROM scan2
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan2.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan2.`f1` AND scan2.`d0` <= DATE_ADD(b.`_ix_date`, -1)
  UNION ALL
  SELECT
    scan0.`lopnr` AS lopnr,
    scan0.`d0` AS d,
    5 AS atom,
    TRUE AS ok
  FROM scan0
  JOIN (
    SELECT
      `lopnr` AS _ix_lopnr,
      `index_date` AS _ix_date
    FROM base
  ) AS b
    ON scan0.`lopnr` = b.`_ix_lopnr`
  WHERE
    scan0.`f2`
    AND scan0.`d0` >= b.`_ix_date`
    AND scan0.`d0` <= DATE_ADD(b.`_ix_date`, 730)
), agg AS (
  SELECT
    ev.`lopnr`,
    COUNT(
      CASE
        WHEN ev.`atom` = 0
        AND ev.`d` >= DATE_ADD(base.`index_date`, -1825)
        AND ev.`d` <= DATE_ADD(base.`index_date`, -1)
        THEN 1
      END
    ) AS c0,
    COUNT(
      CASE
        WHEN ev.`atom` = 1
        AND ev.`d` >= DATE_ADD(base.`index_date`, -365)
        AND ev.`d` <= DATE_ADD(base.`index_date`, 365)
        THEN 1
      END
    ) AS c1,
    MAX(
      CASE
        WHEN ev.`atom` = 2
        AND ev.`d` >= DATE_ADD(base.`index_date`, 180)
        AND ev.`d` <= DATE_ADD(base.`index_date`, 730)
        THEN ev.`d`
      END
    ) AS c2,
    MAX(
      CASE
        WHEN ev.`atom` = 2
        AND ev.`ok`
        AND ev.`d` >= DATE_ADD(base.`index_date`, 180)
        AND ev.`d` <= DATE_ADD(base.`index_date`, 730)
        THEN ev.`d`
      END
    ) AS c3,
    COUNT(CASE WHEN ev.`atom` = 3 THEN 1 END) AS c4,
    COUNT(CASE WHEN ev.`atom` = 4 AND ev.`d` <= DATE_ADD(base.`index_date`, -1) THEN 1 END) AS c5,
    COUNT(
      CASE
        WHEN ev.`atom` = 5
        AND ev.`d` >= base.`index_date`
        AND ev.`d` <= DATE_ADD(base.`index_date`, 730)
        THEN 1
      END
    ) AS c6
  FROM ev AS ev
  JOIN base AS base
    ON ev.`lopnr` = base.`lopnr`
  GROUP BY
    ev.`lopnr`
), persons AS (
  SELECT
    CASE
      WHEN NOT (
        COALESCE(
          (
            (
              12 * YEAR(base.`index_date`) + MONTH(base.`index_date`)
            ) - (
              12 * CAST(base.`fodelsear` AS BIGINT) + CAST(base.`fodelsemanad` AS BIGINT)
            )
          ) BETWEEN 480 AND 911,
          FALSE
        )
      )
      THEN 0
      WHEN NOT (
        NOT (
          COALESCE(agg.`c0`, 0) > 0
        )
      )
      THEN 1
      WHEN NOT (
        COALESCE(agg.`c1`, 0) > 0
      )
      THEN 2
      WHEN NOT (
        COALESCE(agg.`c3` = agg.`c2`, FALSE)
      )
      THEN 3
      WHEN NOT (
        NOT (
          COALESCE(agg.`c4`, 0) > 0
        )
      )
      THEN 4
      WHEN NOT (
        NOT (
          COALESCE(agg.`c5`, 0) > 0
        )
      )
      THEN 5
      WHEN NOT (
        NOT (
          COALESCE(agg.`c6`, 0) > 0
        )
      )
      THEN 6
      ELSE 7
    END AS reached,
    base.`lan` AS region,
    CASE WHEN base.`kon` = 1 THEN 'male' WHEN base.`kon` = 2 THEN 'female' END AS sex
  FROM base AS base
  LEFT JOIN agg AS agg
    ON agg.`lopnr` = base.`lopnr`
)
SELECT
  `region`,
  `sex`,
  GROUPING_ID(`region`, `sex`) AS grp,
  COUNT(CASE WHEN `reached` >= 0 THEN 1 END) AS n0,
  COUNT(CASE WHEN `reached` >= 1 THEN 1 END) AS n1,
  COUNT(CASE WHEN `reached` >= 2 THEN 1 END) AS n2,
  COUNT(CASE WHEN `reached` >= 3 THEN 1 END) AS n3,
  COUNT(CASE WHEN `reached` >= 4 THEN 1 END) AS n4,
  COUNT(CASE WHEN `reached` >= 5 THEN 1 END) AS n5,
  COUNT(CASE WHEN `reached` >= 6 THEN 1 END) AS n6,
  COUNT(CASE WHEN `reached` >= 7 THEN 1 END) AS n7
FROM persons
GROUP BY
  GROUPING SETS (
    (),
    (`region`, `sex`)
  )
