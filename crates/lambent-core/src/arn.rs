//! Lambda function ARNs: `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, written and
//! read in one place.

use std::fmt;

use crate::limits::ACCOUNT_ID;

/// A function's ARN, borrowed from its parts (or from the text it was parsed from). The name
/// and qualifier are not validated here: callers turn them into [`crate::FunctionName`] and
/// [`crate::Selector`], each with its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionArn<'a> {
    /// The region (`us-east-1`).
    pub region: &'a str,
    /// The account (lambent has one: [`ACCOUNT_ID`]).
    pub account: &'a str,
    /// The function's name.
    pub name: &'a str,
    /// A version or alias; none for the unqualified ARN.
    pub qualifier: Option<&'a str>,
}

impl<'a> FunctionArn<'a> {
    /// The ARN of `name` (with `:qualifier` when given) in lambent's account.
    pub fn new(region: &'a str, name: &'a str, qualifier: Option<&'a str>) -> Self {
        Self {
            region,
            account: ACCOUNT_ID,
            name,
            qualifier,
        }
    }

    /// Reads a full function ARN (any partition); `None` when `text` is not one.
    pub fn parse(text: &'a str) -> Option<Self> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [
                "arn",
                _partition,
                "lambda",
                region,
                account,
                "function",
                rest @ ..,
            ] => {
                let (name, qualifier) = match rest {
                    [name] => (*name, None),
                    [name, q] => (*name, Some(*q)),
                    _ => return None,
                };
                Some(Self {
                    region,
                    account,
                    name,
                    qualifier,
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for FunctionArn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        )?;
        match self.qualifier {
            Some(q) => write!(f, ":{q}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_arns() {
        let arn = FunctionArn::new("us-east-1", "hello", Some("3"));
        assert_eq!(
            arn.to_string(),
            "arn:aws:lambda:us-east-1:000000000000:function:hello:3"
        );
        assert_eq!(FunctionArn::parse(&arn.to_string()), Some(arn));
        let bare = FunctionArn::new("eu-west-1", "f", None);
        assert_eq!(
            bare.to_string(),
            "arn:aws:lambda:eu-west-1:000000000000:function:f"
        );
        assert_eq!(
            FunctionArn::parse("arn:aws-cn:lambda:r:1:function:f:$LATEST"),
            Some(FunctionArn {
                region: "r",
                account: "1",
                name: "f",
                qualifier: Some("$LATEST"),
            })
        );
        for bad in [
            "",
            "hello",
            "arn:aws:lambda:r:1:function",
            "arn:aws:lambda:r:1:function:f:1:2",
            "arn:aws:sqs:r:1:queue",
            "arn:aws:lambda:r:1:layer:f",
        ] {
            assert_eq!(FunctionArn::parse(bad), None, "{bad}");
        }
    }
}
