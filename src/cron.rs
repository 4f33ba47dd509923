//! Cron expressions as stackctl reads them (five fields, UTC), with errors that name the
//! stack.toml key: one parser for config validation and for the `backup` service's schedule.

use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::error::UserError;

/// Parses a 5-field cron expression (UTC), naming `field` in the error.
pub fn parse(field: &str, expr: &str) -> Result<Cron, UserError> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| {
            UserError::new(format!("{field} = {expr:?} is not a cron expression: {e}")).hint(
                "five fields, minute hour day-of-month month day-of-week, in UTC: \
                 e.g. \"0 3 * * 0\" (Sundays at 03:00)",
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bad_expression_names_its_field() {
        let e = super::parse("backup.full_schedule", "every sunday").unwrap_err();
        assert!(e.to_string().contains("backup.full_schedule"), "{e}");
        assert!(
            super::parse("x", "* * * * * *").is_err(),
            "seconds are not ours"
        );
        assert!(super::parse("x", "0 3 * * 1-6").is_ok());
    }
}
