//! Service reports (acts of completed work): lines, totals and their freezing.

use super::request::code_enum;
use super::values::{self, Money, Quantity};
use crate::error::{Error, FieldError, Problems};

code_enum!(
    /// Report status.
    ReportStatus { Draft = "draft", Submitted = "submitted", Approved = "approved" }
);

/// One work item as the client sent it.
#[derive(Debug, Clone)]
pub struct RawItem<'a> {
    pub description: &'a str,
    pub quantity: &'a str,
    pub unit: &'a str,
    pub unit_price: &'a str,
}

/// A checked work item with its amount computed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub description: String,
    pub quantity: Quantity,
    pub unit: String,
    pub unit_price: Money,
    pub amount: Money,
}

pub const MAX_ITEMS: usize = 500;

/// Parses every line, collecting all problems, and computes amounts and the total.
pub fn parse_items(raw: &[RawItem<'_>]) -> Result<(Vec<Item>, Money), Error> {
    let mut p = Problems::new();
    if raw.len() > MAX_ITEMS {
        return Err(Error::field(
            "items",
            "too_many",
            format!("at most {MAX_ITEMS} work items"),
        ));
    }
    let mut items = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let f = |name: &str| format!("items[{i}].{name}");
        let description = p.check(values::required_line(&f("description"), r.description, 500));
        let quantity = p.check(Quantity::parse(&f("quantity"), r.quantity));
        let unit = p.check(values::optional_line(&f("unit"), r.unit, 20));
        let unit_price = p.check(Money::parse(&f("unit_price"), r.unit_price));
        if let (Some(description), Some(quantity), Some(unit), Some(unit_price)) =
            (description, quantity, unit, unit_price)
        {
            let Some(amount) = values::line_amount(quantity, unit_price) else {
                p.push(FieldError::new(
                    f("amount"),
                    "too_large",
                    format!(
                        "quantity × unit price must be at most {} roubles",
                        values::MAX_MONEY_TEXT
                    ),
                ));
                continue;
            };
            items.push(Item {
                description,
                quantity,
                unit,
                unit_price,
                amount,
            });
        }
    }
    p.finish()?;
    let total = total(&items).ok_or_else(|| {
        Error::field(
            "total",
            "too_large",
            format!(
                "the sum of the amounts must be at most {} roubles",
                values::MAX_MONEY_TEXT
            ),
        )
    })?;
    Ok((items, total))
}

/// Total = the exact sum of the amounts; `None` when it is past [`Money::MAX`] (never a
/// wrapped number).
pub fn total(items: &[Item]) -> Option<Money> {
    values::sum(items.iter().map(|i| i.amount))
}

/// Lines of a submitted or approved report are frozen.
pub fn ensure_editable(status: ReportStatus) -> Result<(), Error> {
    match status {
        ReportStatus::Draft => Ok(()),
        ReportStatus::Submitted | ReportStatus::Approved => Err(Error::conflict_on(
            "report_frozen",
            "items",
            "the report is submitted; its lines can no longer change",
        )),
    }
}

/// A report is submitted once, with at least one work item.
pub fn ensure_submittable(status: ReportStatus, item_count: usize) -> Result<(), Error> {
    if status != ReportStatus::Draft {
        return Err(Error::conflict(
            "report_not_draft",
            "only a draft report can be submitted",
        ));
    }
    if item_count == 0 {
        return Err(Error::conflict_on(
            "report_empty",
            "items",
            "add at least one work item before submitting",
        ));
    }
    Ok(())
}

/// Only submitted reports are approved.
pub fn ensure_approvable(status: ReportStatus) -> Result<(), Error> {
    if status != ReportStatus::Submitted {
        return Err(Error::conflict(
            "report_not_submitted",
            "only a submitted report can be approved",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(d: &'a str, q: &'a str, p: &'a str) -> RawItem<'a> {
        RawItem {
            description: d,
            quantity: q,
            unit: "шт",
            unit_price: p,
        }
    }

    #[test]
    fn totals_are_computed_exactly() {
        let (items, total) = parse_items(&[
            raw("Осмотр", "2", "1250.00"),
            raw("Датчик", "3", "0.10"),
            raw("Кабель", "12.5", "33.33"),
        ])
        .unwrap();
        assert_eq!(items[0].amount, Money(250_000));
        assert_eq!(items[1].amount, Money(30));
        assert_eq!(items[2].amount, Money(41_663)); // 416.625 -> 416.63
        assert_eq!(total, Money(250_000 + 30 + 41_663));
        assert_eq!(super::total(&items), Some(total));
        assert_eq!(total.to_string(), "2916.93");
    }

    #[test]
    fn every_bad_line_is_reported() {
        let e = parse_items(&[raw("", "0", "-1"), raw("ok", "1", "1")]).unwrap_err();
        let Error::Validation(f) = e else { panic!() };
        let names: Vec<_> = f.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "items[0].description",
                "items[0].quantity",
                "items[0].unit_price"
            ]
        );
    }

    #[test]
    fn frozen_after_submission() {
        assert!(ensure_editable(ReportStatus::Draft).is_ok());
        assert!(ensure_editable(ReportStatus::Submitted).is_err());
        assert!(ensure_editable(ReportStatus::Approved).is_err());
        assert!(ensure_submittable(ReportStatus::Draft, 0).is_err());
        assert!(ensure_submittable(ReportStatus::Draft, 1).is_ok());
        assert!(ensure_submittable(ReportStatus::Submitted, 1).is_err());
        assert!(ensure_approvable(ReportStatus::Submitted).is_ok());
        assert!(ensure_approvable(ReportStatus::Draft).is_err());
    }
}

/// Property tests: a report's amounts and total are the exact numbers or a refusal naming
/// the field, never a wrapped or clamped number.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::domain::values::{MAX_MONEY_KOPECKS, MAX_QUANTITY_MILLI};
    use proptest::prelude::*;

    /// `(quantity in thousandths, unit price in kopecks)` of a line, mostly valid and often
    /// large enough for amounts and totals to pass the maximum.
    fn line() -> impl Strategy<Value = (i64, i64)> {
        (
            prop_oneof![1..=1000_i64, 1..=MAX_QUANTITY_MILLI],
            prop_oneof![0..=100_000_i64, 0..=MAX_MONEY_KOPECKS],
        )
    }

    proptest! {
        #[test]
        fn totals_are_exact_sums_or_refusals(lines in proptest::collection::vec(line(), 0..40)) {
            let texts: Vec<(String, String)> = lines
                .iter()
                .map(|(q, p)| (Quantity(*q).to_string(), Money(*p).to_string()))
                .collect();
            let raw: Vec<RawItem<'_>> = texts
                .iter()
                .map(|(q, p)| RawItem { description: "Работы", quantity: q, unit: "шт", unit_price: p })
                .collect();
            // The reference, in i128: each amount rounded half up, then their plain sum.
            let amounts: Vec<i128> = lines
                .iter()
                .map(|(q, p)| {
                    let exact = i128::from(*q) * i128::from(*p);
                    exact / 1000 + i128::from(exact % 1000 >= 500)
                })
                .collect();
            let max = i128::from(MAX_MONEY_KOPECKS);
            let too_large: Vec<String> = amounts
                .iter()
                .enumerate()
                .filter(|(_, a)| **a > max)
                .map(|(i, _)| format!("items[{i}].amount"))
                .collect();
            let sum: i128 = amounts.iter().sum();
            match parse_items(&raw) {
                Ok((items, total)) => {
                    prop_assert!(too_large.is_empty() && sum <= max);
                    prop_assert_eq!(i128::from(total.0), sum);
                    for (item, want) in items.iter().zip(&amounts) {
                        prop_assert_eq!(i128::from(item.amount.0), *want);
                    }
                    prop_assert_eq!(items.len(), lines.len());
                }
                Err(Error::Validation(fields)) => {
                    let named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                    if too_large.is_empty() {
                        prop_assert!(sum > max);
                        prop_assert_eq!(named, ["total"]);
                    } else {
                        prop_assert_eq!(named, too_large.iter().map(String::as_str).collect::<Vec<_>>());
                    }
                    prop_assert!(fields.iter().all(|f| f.code == "too_large"));
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
