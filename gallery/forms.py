"""Forms for accounts and projects. Run forms live in gallery/run_forms.py."""
import unicodedata

from django import forms
from django.contrib.auth.forms import UserCreationForm

from gallery import images
from gallery.models import Project, Run

IMAGE_ACCEPT = "image/jpeg,image/png,image/webp,image/gif,image/bmp,image/tiff"


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        fields = ("username",)


# Bidirectional embeddings, overrides and isolates: they can make a title read backwards in a file name.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


class TitleField(forms.CharField):
    """A one-line title: line breaks, tabs and other control characters become spaces, runs of
    spaces one, and bidirectional controls are dropped (a title is shown in headings and file names)."""

    def to_python(self, value):
        text = super().to_python(value).translate(_BIDI_CONTROLS)
        text = "".join(" " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in text)
        return " ".join(text.split())


class ImageUploadField(forms.FileField):
    """A file field whose value is the decoded, upright RGB Pillow image (checked by content)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT}))
        super().__init__(**kwargs)
        self.error_messages["empty"] = "The file is empty."

    def clean(self, data, initial=None):
        uploaded = super().clean(data, initial)
        if not uploaded or uploaded is initial:
            return None
        return images.read_upload(uploaded)


class ProjectForm(forms.Form):
    title = TitleField(max_length=120)
    content_image = ImageUploadField(help_text="The picture to repaint.")
    style_image = ImageUploadField(help_text="The painting whose style to borrow.")


class StyleUploadForm(forms.Form):
    image = ImageUploadField(label="Another style image", help_text="A painting to blend with the others.")


class ProjectEditForm(forms.ModelForm):
    content_image = ImageUploadField(required=False, help_text="Leave empty to keep the current image.")
    style_image = ImageUploadField(required=False, help_text="Leave empty to keep the current image.")

    class Meta:
        model = Project
        fields = ("title", "is_public", "cover_run")
        field_classes = {"title": TitleField}
        labels = {
            "is_public": "Public: every signed-in user can see this project read-only",
            "cover_run": "Cover in the public gallery",
        }
        help_texts = {"cover_run": "The run whose latest image shows this project; by default the run that finished last."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cover = self.fields["cover_run"]
        cover.queryset = self.instance.runs.filter(status=Run.Status.DONE).order_by("created", "id")
        cover.empty_label = "The run that finished last"
        cover.label_from_instance = lambda run: f"Run {run.id}: {run.label}"
