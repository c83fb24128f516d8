from django.contrib import admin

from gallery.models import Iteration, Project, Run, Sweep


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "is_public", "created")
    list_filter = ("is_public",)
    search_fields = ("title", "owner__username")


class IterationInline(admin.TabularInline):
    model = Iteration
    extra = 0
    fields = ("number", "loss", "content_loss", "style_loss", "tv_loss", "evaluations", "seconds")
    readonly_fields = fields


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "label", "status", "iterations_done", "iterations", "device", "created")
    list_filter = ("status", "optimizer")
    search_fields = ("project__title",)
    inlines = [IterationInline]


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "axis1", "axis2", "created")
    search_fields = ("project__title",)
