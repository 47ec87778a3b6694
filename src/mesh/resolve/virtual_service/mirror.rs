//! Traffic mirroring: `mirror` with `mirrorPercentage`, or `mirrors[]`.

use super::HttpRouteContext;
use crate::mesh::resolve::validate;
use crate::mesh::resolve::Diags;
use crate::mesh::{Code, Mirror};
use crate::spec;

impl HttpRouteContext<'_> {
    /// `mirror` (with `mirrorPercentage`) or `mirrors[]`, as one list.
    pub(super) fn mirrors(
        &self,
        mirror: Option<&spec::Destination>,
        mirror_percentage: Option<&spec::Percent>,
        mirrors: &[spec::HttpMirrorPolicy],
        diags: &mut Diags<'_>,
    ) -> Vec<Mirror> {
        let mut resolved_mirrors = Vec::new();
        if mirror.is_some() && !mirrors.is_empty() {
            // Istio's validation rejects the pair rather than picking one.
            diags.error(
                self.meta,
                Code::ConflictingFields,
                self.field("mirrors"),
                "set either `mirror` or `mirrors`, not both",
            );
        }
        if let Some(m) = mirror {
            resolved_mirrors.extend(self.mirror(
                m,
                &self.field("mirror"),
                mirror_percentage,
                &self.field("mirrorPercentage"),
                diags,
            ));
        } else if mirror_percentage.is_some() {
            diags.error(
                self.meta,
                Code::RequiresField,
                self.field("mirrorPercentage"),
                "mirrorPercentage needs `mirror`",
            );
        }
        for (k, m) in mirrors.iter().enumerate() {
            let field = self.field(&format!("mirrors[{k}]"));
            resolved_mirrors.extend(self.mirror(
                &m.destination,
                &format!("{field}.destination"),
                m.percentage.as_ref(),
                &format!("{field}.percentage"),
                diags,
            ));
        }
        resolved_mirrors
    }

    /// One mirror (`mirror` with `mirrorPercentage`, or a `mirrors[]` entry); all traffic when no percentage.
    fn mirror(
        &self,
        destination: &spec::Destination,
        destination_field: &str,
        percentage: Option<&spec::Percent>,
        percentage_field: &str,
        diags: &mut Diags<'_>,
    ) -> Option<Mirror> {
        let percentage = match percentage {
            Some(p) => validate::percentage(diags, self.meta, percentage_field, p),
            None => Some(1_000_000),
        };
        let destination = self.destination(destination, destination_field, diags);
        Some(Mirror {
            destination: destination?,
            percentage: percentage?,
        })
    }
}
